//! `voicemail`: the caller leaves a message for a queue (the overflow when no agent is free:
//! a transfer's `fallback` leads here). The prompt, a tone, then the caller's words until
//! they press `#`, fall silent for 4 s, hang up, or reach `max_s`; the message is saved for
//! the queue (`transfer.messages_dir`/QUEUE/CALL.wav, with its details beside it).
//!
//! ```yaml
//! leave_message:
//!   voicemail: { queue: general, say: message_prompt, max_s: 60 }
//!   next: thanks        # optional: without it, a thank-you and the call ends
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, DecisionKind, Waiting};
use crate::dialplan::model::Speech;
use crate::dialplan::phrases::Phrase;
use crate::dialplan::read::{Ctx, MapReader, number, text};
use crate::dialplan::yaml::Yaml;

/// The longest message a caller may leave by default, and the bounds of `max_s`.
pub const DEFAULT_MAX_S: u64 = 60;
const MAX_S: std::ops::RangeInclusive<u64> = 5..=600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    pub queue: String,
    pub say: Option<Speech>,
    pub max_s: u64,
}

impl NodeKind for Voicemail {
    fn enter(
        &self,
        id: &str,
        _next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        let prompt = match &self.say {
            Some(s) => s.text.clone(),
            None => Phrase::MessagePrompt.text(&call.hotline().plan).to_string(),
        };
        call.say(actions, &prompt, false);
        actions.push(Action::RecordMessage {
            queue: self.queue.clone(),
            max_ms: self.max_s * 1000,
        });
        call.record.decision = DecisionKind::Dialplan;
        call.waiting = Waiting::Message(id.to_string());
        Walk::Wait
    }

    fn speech(&self) -> Vec<&Speech> {
        self.say.iter().collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Voicemail> {
    let mut m = MapReader::new(value, "voicemail", cx.p);
    let queue = m.get("queue").and_then(|y| text(y, "queue", cx.p));
    let say = m.get("say").and_then(|y| cx.speech(y, "say"));
    let max_s = match m.get("max_s") {
        Some(y) => {
            let n = number(y, "max_s", cx.p)?;
            if !MAX_S.contains(&n) {
                cx.p.add(
                    y.pos(),
                    format!("max_s {n} is out of range"),
                    format!("{} to {} seconds", MAX_S.start(), MAX_S.end()),
                );
                return None;
            }
            n
        }
        None => DEFAULT_MAX_S,
    };
    let pos = m.pos;
    m.finish(&[], cx.p);
    let Some((queue, _)) = queue else {
        cx.p.add(pos, "voicemail needs the `queue` its messages are for", "");
        return None;
    };
    Some(Voicemail { queue, say, max_s })
}
