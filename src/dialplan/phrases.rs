//! What voxnav says on its own, not written in any node: reading a value back, "do you mean X
//! or Y?", the keypad offer when recognition fails, the hand-over when no handler says where
//! to go, the goodbye when no agent is free, a waiting caller's place in the queue, and the
//! apology when an agent's phone drops. Each has an id that a dialplan's `prompts:` may override, and a default in each language, so a Mandarin hotline never speaks English.

use super::model::{Dialplan, Language};

/// A built-in phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    /// Reads a value back for a yes: `{{value}}` is the value as spoken.
    ConfirmValue,
    /// Between two knowledge entries: `{{first}}` and `{{second}}` are their topics.
    ChooseEntry,
    /// Recognition failed or is too slow: the keypad still works.
    KeypadOffer,
    /// A caller who needs a human and no handler names the node that hands them over.
    ConnectFallback,
    /// A transfer failed and no fallback takes the caller back into the flow.
    NoAgentGoodbye,
    /// A caller waiting in a queue: `{{position}}` is their place (1: next).
    QueuePlace,
    /// The same with `{{wait}}`, the estimated wait in words ("about 3 minutes").
    QueuePlaceAndWait,
    /// A `voicemail` node without its own `say`: before the tone.
    MessagePrompt,
    /// After a message, when the voicemail node has no `next`.
    MessageThanks,
    /// A callback was queued: `{{number}}` is the number, digit by digit.
    CallbackConfirm,
    /// The agent's phone went silent mid-call and the caller is back at the head of the
    /// queue.
    AgentLostHold,
    /// The same when there is no queue to go back to: the transfer's fallback follows.
    AgentLost,
    /// What the agent hears first on a warm transfer (`transfer.warm`).
    WarmTransfer,
}

impl Phrase {
    pub const ALL: [Phrase; 13] = [
        Phrase::ConfirmValue,
        Phrase::ChooseEntry,
        Phrase::KeypadOffer,
        Phrase::ConnectFallback,
        Phrase::NoAgentGoodbye,
        Phrase::QueuePlace,
        Phrase::QueuePlaceAndWait,
        Phrase::MessagePrompt,
        Phrase::MessageThanks,
        Phrase::CallbackConfirm,
        Phrase::AgentLostHold,
        Phrase::AgentLost,
        Phrase::WarmTransfer,
    ];

    /// The prompt id that overrides it.
    pub fn id(self) -> &'static str {
        match self {
            Phrase::ConfirmValue => "confirm_value",
            Phrase::ChooseEntry => "choose_entry",
            Phrase::KeypadOffer => "keypad_offer",
            Phrase::ConnectFallback => "connect_fallback",
            Phrase::NoAgentGoodbye => "no_agent_goodbye",
            Phrase::QueuePlace => "queue_place",
            Phrase::QueuePlaceAndWait => "queue_place_and_wait",
            Phrase::MessagePrompt => "message_prompt",
            Phrase::MessageThanks => "message_thanks",
            Phrase::CallbackConfirm => "callback_confirm",
            Phrase::AgentLostHold => "agent_lost_hold",
            Phrase::AgentLost => "agent_lost",
            Phrase::WarmTransfer => "warm_transfer",
        }
    }

    /// What it says in `language` unless the dialplan overrides it.
    pub fn default_text(self, language: Language) -> &'static str {
        use Language::{English, Mandarin};
        match (self, language) {
            (Phrase::ConfirmValue, English) => "I heard {{value}}. Is that right?",
            (Phrase::ConfirmValue, Mandarin) => "我听到的是{{value}}，对吗？",
            (Phrase::ChooseEntry, English) => "Do you mean {{first}}, or {{second}}?",
            (Phrase::ChooseEntry, Mandarin) => "您是想问{{first}}，还是{{second}}？",
            (Phrase::KeypadOffer, English) => {
                "Sorry, I couldn't catch that. You can also use your keypad."
            }
            (Phrase::KeypadOffer, Mandarin) => "抱歉，我没有听清。您也可以使用电话按键。",
            (Phrase::ConnectFallback, English) => "Let me connect you to a colleague.",
            (Phrase::ConnectFallback, Mandarin) => "我为您转接人工客服。",
            (Phrase::NoAgentGoodbye, English) => {
                "Sorry, no colleague is free right now. Please call again later. Goodbye."
            }
            (Phrase::NoAgentGoodbye, Mandarin) => "抱歉，现在没有空闲的客服。请稍后再来电。再见。",
            (Phrase::QueuePlace, English) => {
                "All our colleagues are busy. You are number {{position}} in the queue."
            }
            (Phrase::QueuePlace, Mandarin) => "客服正忙。您现在排在第{{position}}位。",
            (Phrase::QueuePlaceAndWait, English) => {
                "All our colleagues are busy. You are number {{position}} in the queue. \
                 The expected wait is {{wait}}."
            }
            (Phrase::QueuePlaceAndWait, Mandarin) => {
                "客服正忙。您现在排在第{{position}}位，预计等待{{wait}}。"
            }
            (Phrase::MessagePrompt, English) => {
                "Please leave your message after the tone. Press hash when you are done."
            }
            (Phrase::MessagePrompt, Mandarin) => "请在提示音后留言，结束后请按井号键。",
            (Phrase::MessageThanks, English) => {
                "Thank you. Your message has been recorded, and a colleague will call you back. \
                 Goodbye."
            }
            (Phrase::MessageThanks, Mandarin) => "谢谢，您的留言已录下，客服会给您回电。再见。",
            (Phrase::CallbackConfirm, English) => {
                "A colleague will call you back at {{number}} as soon as one is free. Goodbye."
            }
            (Phrase::CallbackConfirm, Mandarin) => "客服有空时会回电到{{number}}。再见。",
            (Phrase::AgentLostHold, English) => {
                "Sorry, we lost the line to our colleague. Please hold: you are next in line."
            }
            (Phrase::AgentLostHold, Mandarin) => "抱歉，与客服的通话中断了。请稍候，您排在第一位。",
            (Phrase::AgentLost, English) => "Sorry, we lost the line to our colleague.",
            (Phrase::AgentLost, Mandarin) => "抱歉，与客服的通话中断了。",
            (Phrase::WarmTransfer, English) => {
                "A caller for you. The reason: {{reason}}. Putting them through now."
            }
            (Phrase::WarmTransfer, Mandarin) => "有来电转接给您。原因：{{reason}}。现在为您接通。",
        }
    }

    /// What it says on `plan`'s hotline: the dialplan's prompt of that id, else the default
    /// for its language.
    pub fn text(self, plan: &Dialplan) -> &str {
        plan.prompts
            .get(self.id())
            .map_or(self.default_text(plan.language), String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrase_has_a_text_in_every_language_and_a_dialplan_overrides_it() {
        for phrase in Phrase::ALL {
            for language in [Language::English, Language::Mandarin] {
                let text = phrase.default_text(language);
                let ascii = text.chars().filter(char::is_ascii_alphabetic).count();
                match language {
                    Language::English => assert!(ascii > 10, "{phrase:?}: {text}"),
                    // Variables aside, no English in a Mandarin phrase.
                    Language::Mandarin => assert!(
                        text.replace("{{value}}", "")
                            .replace("{{first}}", "")
                            .replace("{{second}}", "")
                            .replace("{{position}}", "")
                            .replace("{{wait}}", "")
                            .replace("{{number}}", "")
                            .replace("{{reason}}", "")
                            .chars()
                            .all(|c| !c.is_ascii_alphabetic()),
                        "{phrase:?}: {text}"
                    ),
                }
            }
        }
        let mut plan = crate::dialplan::load_str(
            "t.yaml",
            "name: t\nlanguage: zh\nintents:\n  hi:\n    examples: [你好, 您好, 喂你好]\nstart: bye\nnodes:\n  bye: { hangup: \"再见\" }\n",
        )
        .expect("loads");
        assert_eq!(
            Phrase::KeypadOffer.text(&plan),
            "抱歉，我没有听清。您也可以使用电话按键。"
        );
        plan.prompts
            .insert("keypad_offer".into(), "请按键输入。".into());
        assert_eq!(Phrase::KeypadOffer.text(&plan), "请按键输入。");
    }
}
