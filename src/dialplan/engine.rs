//! The per-call engine, sans-IO: events in (call start, what the caller said with its ASR
//! confidence, keypad digits, silence, backend replies, hangup), actions out (say, listen,
//! HTTP request, transfer, hang up). Every caller turn yields a `Decision` record: the input,
//! intent and confidence, slots, sentiment, knowledge-base match, what was decided and why,
//! and the nodes walked.
//!
//! Global handlers run at every `ask` before the node's own expectations, in this order: too
//! many turns, an angry caller, "repeat that", a request for a human, goodbye. A caller is
//! never left in silence: every path ends in a prompt and a listen, a transfer or a hang-up,
//! and a runaway walk (which `check` rules out) transfers rather than spin.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{Dialplan, Language, SlotKind};
use super::nodes::{Node, Walk, transfer::Target};
use super::phrases::Phrase;
use super::read::fill;
use super::values;
use crate::nlu::dates::Date;
use crate::nlu::intent::{Embedder, Example, IntentRouter, RouterConfig};
use crate::nlu::kb::{Entry, KnowledgeBase};
use crate::nlu::{sentiment, slots};

/// A dialplan with its trained NLU: what calls run. Shared (`Arc`) so a reload swaps in a new
/// version while calls in progress keep the one they started with.
pub struct Hotline {
    pub plan: Dialplan,
    pub router: IntentRouter,
    pub kb: KnowledgeBase,
    pub embedder: Arc<dyn Embedder>,
}

impl std::fmt::Debug for Hotline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotline")
            .field("name", &self.plan.name)
            .finish_non_exhaustive()
    }
}

impl Hotline {
    /// Trains the router and indexes the knowledge base.
    pub fn build(plan: Dialplan, embedder: Arc<dyn Embedder>) -> Self {
        let examples: Vec<Example> = plan
            .intents
            .iter()
            .flat_map(|i| {
                i.examples.iter().map(|t| Example {
                    intent: i.name.clone(),
                    text: t.clone(),
                })
            })
            .collect();
        let keywords: Vec<(String, Vec<String>)> = plan
            .intents
            .iter()
            .map(|i| (i.name.clone(), i.keywords.clone()))
            .collect();
        // The embedding model is English: for Mandarin the character-level view leads, in
        // routing, out-of-scope detection and the knowledge base alike.
        let (weight, kb_weight) = match plan.language {
            Language::English => (RouterConfig::default().embedding_weight, 0.8),
            Language::Mandarin => (0.3, 0.3),
        };
        let config = RouterConfig {
            embedding_weight: weight,
            many_embedding_weight: weight.min(RouterConfig::default().many_embedding_weight),
            similarity_weight: if plan.language == Language::Mandarin {
                0.3
            } else {
                1.0
            },
            ..Default::default()
        };
        let router = IntentRouter::train(embedder.as_ref(), &examples, &keywords, config);
        let entries = plan
            .knowledge
            .iter()
            .map(|k| Entry {
                id: k.id.clone(),
                // Named by its first question when the dialplan gives no topic.
                topic: (k.topic.clone())
                    .or_else(|| k.questions.first().cloned())
                    .unwrap_or_else(|| k.id.replace('_', " ")),
                questions: k.questions.clone(),
                answer: k.answer.clone(),
            })
            .collect();
        let kb = KnowledgeBase::build(
            embedder.as_ref(),
            entries,
            plan.settings.kb_threshold,
            kb_weight,
        );
        Self {
            plan,
            router,
            kb,
            embedder,
        }
    }
}

/// What happens in a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Start,
    /// What the caller said, with the recogniser's confidence (0-1).
    Speech {
        text: String,
        confidence: f32,
    },
    /// Keypad digits (a whole entry, e.g. "4721#" without the `#`).
    Dtmf(String),
    /// The caller said nothing within the listen timeout.
    NoInput,
    HttpResponse {
        status: u16,
        body: String,
    },
    HttpFailed(String),
    /// The transfer could not be completed (no agent answered, the queue is closed): the
    /// caller is told and the call ends politely rather than in silence.
    TransferFailed(String),
    /// The caller's message (a `voicemail` node) ended after this long (0: nothing said).
    MessageRecorded {
        ms: u64,
    },
    /// The caller hung up.
    Hangup,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Say {
        text: String,
        barge_in: bool,
    },
    Listen {
        timeout_ms: u64,
        dtmf_max: usize,
        expect: String,
        /// At an ask for a digits slot: the fewest digits it takes (turn-taking waits
        /// through pauses between groups until a number this long was heard).
        digits_min: Option<usize>,
    },
    Http {
        method: String,
        url: String,
        body: Option<String>,
        timeout_ms: u64,
    },
    Transfer {
        target: String,
        reason: String,
        transcript: Vec<String>,
        /// The caller's place in a queue's line: higher goes first (`PRIORITY_UPSET`,
        /// `PRIORITY_FAILED`, 0), or the transfer node's own `priority`.
        priority: u8,
    },
    /// Queue a callback: an agent of `queue` calls `number` back when free.
    Callback {
        queue: String,
        number: String,
        reason: String,
        transcript: Vec<String>,
        priority: u8,
    },
    /// Record the caller's message for `queue` (a tone first), at most `max_ms`; the
    /// session answers with `Event::MessageRecorded`.
    RecordMessage {
        queue: String,
        max_ms: u64,
    },
    Hangup {
        reason: String,
    },
}

impl Action {
    /// A short name for records ("listen", "transfer"...).
    pub fn name(&self) -> &'static str {
        match self {
            Action::Say { .. } => "say",
            Action::Listen { .. } => "listen",
            Action::Http { .. } => "http",
            Action::Transfer { .. } => "transfer",
            Action::RecordMessage { .. } => "record_message",
            Action::Callback { .. } => "callback",
            Action::Hangup { .. } => "hangup",
        }
    }
}

/// A transfer's queue priority for a caller who sounds upset (sentiment and repeated
/// failure past the dialplan's `anger_threshold`).
pub const PRIORITY_UPSET: u8 = 2;
/// A transfer's queue priority for a caller the bot failed (no match, no input).
pub const PRIORITY_FAILED: u8 = 1;

/// The decision of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// Answered from the knowledge base or a backend lookup.
    Answer,
    /// Walked the dialplan (asked for more, confirmed, branched, reprompted).
    Dialplan,
    /// Handed to a human.
    Transfer,
    /// The call ended.
    End,
}

impl DecisionKind {
    pub fn name(self) -> &'static str {
        match self {
            DecisionKind::Answer => "answer",
            DecisionKind::Dialplan => "dialplan",
            DecisionKind::Transfer => "transfer",
            DecisionKind::End => "end",
        }
    }
}

/// The record of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub turn: u32,
    pub input: String,
    pub asr_confidence: Option<f32>,
    pub intent: Option<String>,
    pub confidence: f32,
    pub out_of_scope: bool,
    pub slots: BTreeMap<String, String>,
    pub sentiment: f32,
    pub kb: Option<String>,
    pub kb_score: Option<f32>,
    /// A survey score given this turn (a `rating` slot filled): the call's satisfaction.
    pub survey: Option<u32>,
    pub decision: DecisionKind,
    pub reason: String,
    pub path: Vec<String>,
    pub say: Vec<String>,
    /// The last action of the turn (what the call does next).
    pub action: String,
}

/// The output of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub actions: Vec<Action>,
    pub decision: Option<Decision>,
}

/// Where the call waits.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::dialplan) enum Waiting {
    Nothing,
    Ask(String),
    Http(String),
    /// A `voicemail` node records the caller's message.
    Message(String),
    /// Handed over; the call ends unless the transfer fails.
    Transferred,
    Ended,
}

/// The most nodes one event may walk before the engine gives up and transfers.
const MAX_STEPS: usize = 200;

/// One call.
#[derive(Debug)]
pub struct CallEngine {
    pub(in crate::dialplan) hotline: Arc<Hotline>,
    pub(in crate::dialplan) vars: BTreeMap<String, String>,
    pub(in crate::dialplan) waiting: Waiting,
    pub(in crate::dialplan) returns: Vec<String>,
    turn: u32,
    pub(in crate::dialplan) no_input: usize,
    pub(in crate::dialplan) no_match: usize,
    /// Failed turns in a row across asks (repeated failure is frustration too).
    failures: usize,
    pub(in crate::dialplan) last_prompt: String,
    transcript: Vec<String>,
    /// Where the call goes if the transfer in progress fails (the transfer node's `fallback`).
    transfer_fallback: Option<String>,
    /// Transfers that failed on this call: after two the call ends rather than loop.
    transfer_failures: usize,
    /// Keys a caller waiting for the transfer's agent may press, and the node each leads to
    /// (the transfer node's `keys`), with the text that offers them (`options`).
    pub(in crate::dialplan) transfer_keys: BTreeMap<char, String>,
    pub(in crate::dialplan) transfer_options: Option<String>,
    /// Slot values the caller gave before the flow asked for them ("where is order
    /// 472198"): the ask for one takes it instead of asking.
    pub(in crate::dialplan) heard: BTreeMap<String, Heard>,
    /// The value being read back at the current ask, awaiting a yes.
    pub(in crate::dialplan) confirming: Option<Heard>,
    /// Two knowledge entries the caller's question sat between, awaiting "which one".
    choosing: Option<Choice>,
    /// Built during an event.
    pub(in crate::dialplan) record: Decision,
}

/// What a caller asked for instead of answering an ask's question.
enum Request {
    Intent(String),
    Kb(String),
}

/// A slot value and how sure recognition was of it (1 for keys).
#[derive(Debug, Clone, PartialEq)]
pub(in crate::dialplan) struct Heard {
    pub(in crate::dialplan) slot: String,
    pub(in crate::dialplan) value: String,
    pub(in crate::dialplan) confidence: f32,
}

/// How much nearer an intent's example may be than the nearer option before a reply to "do
/// you mean X or Y?" counts as a new request instead of a choice.
const CHOICE_SLACK: f32 = 0.1;

/// "Do you mean X or Y?" asked: the two entries, best first, and the question that was
/// between them (kept as the call's `utterance` when one is chosen).
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    options: [String; 2],
    question: String,
}

fn empty_record() -> Decision {
    Decision {
        turn: 0,
        input: String::new(),
        asr_confidence: None,
        intent: None,
        confidence: 0.0,
        out_of_scope: false,
        slots: BTreeMap::new(),
        sentiment: 0.0,
        kb: None,
        kb_score: None,
        survey: None,
        decision: DecisionKind::Dialplan,
        reason: String::new(),
        path: Vec::new(),
        say: Vec::new(),
        action: String::new(),
    }
}

const REPEAT: &[&str] = &[
    "repeat",
    "say that again",
    "say again",
    "pardon",
    "come again",
    "what did you say",
    "one more time",
    "再说一遍",
    "重复",
];

/// What a caller waiting for an agent says to be called back instead (the transfer's key
/// that leads to a `callback` node), lower case, English and Mandarin.
const SAY_CALLBACK: &[&str] = &[
    "call me back",
    "callback",
    "call back",
    "ring me back",
    "phone me back",
    "回电",
    "回拨",
    "打回来",
    "回个电话",
];
/// ... and to leave a message (the key to a `voicemail` node).
const SAY_MESSAGE: &[&str] = &[
    "leave a message",
    "leave message",
    "voicemail",
    "voice mail",
    "record a message",
    "留言",
    "留个言",
];
/// A key said as a word ("one", "press two").
const KEY_WORDS: [(&str, char); 12] = [
    ("zero", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
    ("star", '*'),
    ("pound", '#'),
];

impl CallEngine {
    /// A call on `hotline`; `vars` override the dialplan's initial variables (e.g. the caller
    /// number, a backend address).
    pub fn new(hotline: Arc<Hotline>, vars: BTreeMap<String, String>) -> Self {
        let mut all = hotline.plan.vars.clone();
        // Every call has a caller; the host passes the real one (`sip::identity`).
        all.insert(
            "caller_number".into(),
            crate::sip::identity::ANONYMOUS.into(),
        );
        all.insert("caller_name".into(), String::new());
        all.extend(vars);
        Self {
            hotline,
            vars: all,
            waiting: Waiting::Nothing,
            returns: Vec::new(),
            turn: 0,
            no_input: 0,
            no_match: 0,
            failures: 0,
            last_prompt: String::new(),
            transcript: Vec::new(),
            transfer_fallback: None,
            transfer_keys: BTreeMap::new(),
            transfer_options: None,
            transfer_failures: 0,
            heard: BTreeMap::new(),
            confirming: None,
            choosing: None,
            record: empty_record(),
        }
    }

    /// The call's date for relative dates ("tomorrow"): the `today` variable (YYYY-MM-DD),
    /// which the host sets from its clock (the engine reads none); 1970-01-01 without it.
    fn today(&self) -> Date {
        self.vars
            .get("today")
            .and_then(|t| Date::parse(t))
            .unwrap_or(Date::from_days(0))
    }

    /// Whether the call waits for a transfer's agent (the bot is out of the conversation).
    pub fn transferred(&self) -> bool {
        self.waiting == Waiting::Transferred
    }

    /// What the transfer in progress offers a waiting caller ("Press 1 to be called back").
    pub fn transfer_options(&self) -> Option<&str> {
        self.transfer_options.as_deref()
    }

    /// Whether a caller waiting for an agent may leave the queue by a key (or by saying
    /// what it does).
    pub fn offers_keys_while_waiting(&self) -> bool {
        self.waiting == Waiting::Transferred && !self.transfer_keys.is_empty()
    }

    /// The transfer's key a waiting caller's words stand for: the key itself said as a word
    /// ("one", "press 2"), "call me back" for the key that leads to a `callback` node,
    /// "leave a message" for one that leads to a `voicemail` node. None: words that ask
    /// for none of them (the caller keeps waiting).
    pub fn key_said_while_waiting(&self, text: &str) -> Option<char> {
        let lowered: String = (text.to_lowercase().chars())
            .map(|c| {
                if c.is_alphanumeric() || c.is_whitespace() {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        let words: Vec<&str> = lowered.split_whitespace().collect();
        let said = words.join(" ");
        let keys = &self.transfer_keys;
        // A key by itself ("one", "1", "press two"): only a short answer, not a digit in a
        // longer sentence.
        if words.len() <= 2 {
            let key = (words.last()).and_then(|w| {
                let digit = (w.len() == 1).then(|| w.chars().next()).flatten();
                (digit.filter(char::is_ascii_digit))
                    .or_else(|| KEY_WORDS.iter().find(|(k, _)| k == w).map(|&(_, c)| c))
            });
            if let Some(k) = key.filter(|k| keys.contains_key(k)) {
                return Some(k);
            }
        }
        let kind_of = |node: &str| self.hotline.plan.node(node).map(|n| n.kind.kind());
        let asks = |phrases: &[&str]| phrases.iter().any(|p| said.contains(p));
        let wanted = if asks(SAY_MESSAGE) {
            "voicemail"
        } else if asks(SAY_CALLBACK) {
            "callback"
        } else {
            return None;
        };
        (keys.iter())
            .find(|(_, node)| kind_of(node) == Some(wanted))
            .map(|(&k, _)| k)
    }

    pub fn hotline(&self) -> &Arc<Hotline> {
        &self.hotline
    }

    /// Whether the call is over (hung up, or handed to a human).
    pub fn is_ended(&self) -> bool {
        matches!(self.waiting, Waiting::Ended | Waiting::Transferred)
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Whether `text` means something to this hotline (a confident intent, a knowledge-base
    /// entry, digits, or a request to repeat), without changing the call: the call session
    /// asks it about a short sound a caller made over a prompt (Whisper turns a cough or an
    /// "uh-huh" into words).
    pub fn understands(&self, text: &str) -> bool {
        let lowered = text.to_lowercase();
        // A number (not one "oh", which is how Whisper often writes a grunt).
        let number = slots::digits(text).is_some_and(|d| d.len() >= 3);
        if number || REPEAT.iter().any(|r| lowered.contains(r)) {
            return true;
        }
        let settings = &self.hotline.plan.settings;
        let embedding = self.hotline.embedder.embed(text);
        let m = self.hotline.router.classify_embedded(&embedding, text);
        (m.intent.is_some() && !m.out_of_scope && m.confidence >= settings.min_confidence)
            || self
                .hotline
                .kb
                .best_embedded(&embedding, text)
                .is_some_and(|kb| kb.score >= settings.kb_threshold && kb.clear())
    }

    /// The caller's and bot's lines so far ("caller: ...", "bot: ...").
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    pub(in crate::dialplan) fn say(
        &mut self,
        actions: &mut Vec<Action>,
        text: &str,
        barge_in: bool,
    ) {
        let text = fill(text, |v| self.vars.get(v).cloned());
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return;
        }
        self.transcript.push(format!("bot: {text}"));
        self.record.say.push(text.clone());
        actions.push(Action::Say { text, barge_in });
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) -> Step {
        let mut actions = Vec::new();
        self.record = empty_record();
        self.record.turn = self.turn;
        // Words of a caller waiting for an agent that ask for one of the transfer's keys
        // are that key.
        let mut said_while_waiting = None;
        let event = match event {
            Event::Speech { text, .. } if self.waiting == Waiting::Transferred => {
                match self.key_said_while_waiting(&text) {
                    Some(key) => {
                        said_while_waiting = Some(text);
                        Event::Dtmf(key.to_string())
                    }
                    None => Event::Speech {
                        text,
                        confidence: 0.0,
                    },
                }
            }
            other => other,
        };
        let waiting_key = matches!(&event, Event::Dtmf(d)
            if d.chars().count() == 1
                && d.chars().next().is_some_and(|k| self.transfer_keys.contains_key(&k)));
        let transfer_news =
            matches!(event, Event::TransferFailed(_) | Event::Hangup) || waiting_key;
        if self.waiting == Waiting::Ended
            || (self.waiting == Waiting::Transferred && !transfer_news)
        {
            return Step {
                actions,
                decision: None,
            };
        }
        // A text caller (the simulator, dialplan tests) at a voicemail: their next words are
        // the message (a live call's session records audio and sends `MessageRecorded`).
        let event = match (&self.waiting, event) {
            (Waiting::Message(_), Event::Speech { text, .. }) => {
                self.transcript.push(format!("caller (message): {text}"));
                let ms = 400 * text.split_whitespace().count() as u64;
                Event::MessageRecorded { ms }
            }
            (Waiting::Message(_), Event::NoInput) => Event::MessageRecorded { ms: 0 },
            (_, event) => event,
        };
        match event {
            Event::Start => {
                self.record.input = "(call start)".into();
                self.record.reason = "call answered".into();
                let start = self.hotline.plan.start.name.clone();
                self.run(&start, &mut actions);
            }
            Event::Hangup => {
                self.waiting = Waiting::Ended;
                self.record.input = "(hangup)".into();
                self.record.decision = DecisionKind::End;
                self.record.reason = "caller hung up".into();
                self.record.action = "end".into();
                return Step {
                    actions,
                    decision: Some(self.record.clone()),
                };
            }
            Event::HttpResponse { status, body } => self.on_http(Ok((status, body)), &mut actions),
            Event::HttpFailed(why) => self.on_http(Err(why), &mut actions),
            Event::MessageRecorded { ms } => self.on_message(ms, &mut actions),
            Event::TransferFailed(why)
                if self.transfer_fallback.is_some() && self.transfer_failures == 0 =>
            {
                self.transfer_failures += 1;
                // The dialplan says where to go when no agent answers: back into the flow.
                self.record.input = "(transfer failed)".into();
                self.record.reason = format!("transfer failed: {why}");
                self.waiting = Waiting::Nothing;
                let fallback = self.transfer_fallback.take().unwrap_or_default();
                self.run(&fallback, &mut actions);
            }
            Event::TransferFailed(why) => {
                self.record.input = "(transfer failed)".into();
                self.record.decision = DecisionKind::End;
                self.record.reason = format!("transfer failed: {why}");
                let goodbye = Phrase::NoAgentGoodbye.text(&self.hotline.plan).to_string();
                self.say(&mut actions, &goodbye, false);
                actions.push(Action::Hangup {
                    reason: self.record.reason.clone(),
                });
                self.waiting = Waiting::Ended;
            }
            Event::Speech { text, confidence } => {
                self.turn += 1;
                self.record.turn = self.turn;
                self.record.input = text.clone();
                self.record.asr_confidence = Some(confidence);
                self.transcript.push(format!("caller: {text}"));
                self.on_input(Some((&text, confidence)), None, &mut actions);
            }
            // A key the transfer offers while the caller waits for an agent: out of the
            // queue, on to its node (a callback, a message...).
            Event::Dtmf(key) if self.waiting == Waiting::Transferred => {
                let node = (key.chars().next())
                    .and_then(|k| self.transfer_keys.get(&k).cloned())
                    .unwrap_or_default();
                match said_while_waiting.take() {
                    Some(text) => {
                        self.transcript.push(format!("caller (waiting): {text}"));
                        self.record.input = text;
                        self.record.reason = format!(
                            "the caller asked for key {key}'s option while waiting for an agent"
                        );
                    }
                    None => {
                        self.record.input = format!("(key {key} while waiting)");
                        self.record.reason =
                            format!("the caller pressed {key} while waiting for an agent");
                    }
                }
                self.waiting = Waiting::Nothing;
                self.transfer_fallback = None;
                self.transfer_keys.clear();
                self.transfer_options = None;
                self.run(&node, &mut actions);
            }
            Event::Dtmf(digits) => {
                self.turn += 1;
                self.record.turn = self.turn;
                self.record.input = format!("#dtmf {digits}");
                self.transcript.push(format!("caller (keypad): {digits}"));
                self.on_input(None, Some(&digits), &mut actions);
            }
            Event::NoInput => {
                self.turn += 1;
                self.record.turn = self.turn;
                self.record.input = "(silence)".into();
                self.on_no_input(&mut actions);
            }
        }
        self.record.action = actions.last().map_or("none", Action::name).to_string();
        if self.record.action == "say" {
            // Should not happen (every walk ends in listen/transfer/hangup), but never leave
            // the caller in silence: listen for more.
            actions.push(Action::Listen {
                timeout_ms: self.hotline.plan.settings.no_input_ms,
                dtmf_max: 1,
                expect: "anything".into(),
                digits_min: None,
            });
            self.record.action = "listen".into();
        }
        Step {
            actions,
            decision: Some(self.record.clone()),
        }
    }

    fn handler_or_end(
        &mut self,
        target: Option<String>,
        reason: &str,
        kind: DecisionKind,
        actions: &mut Vec<Action>,
    ) {
        self.record.reason = reason.to_string();
        self.record.decision = kind;
        match target {
            Some(t) => self.run(&t, actions),
            None => {
                // No handler: a human is better than a dead end.
                let text = Phrase::ConnectFallback.text(&self.hotline.plan).to_string();
                self.say(actions, &text, false);
                self.transfer(Target::Queue("general".into()), reason, None, None, actions);
            }
        }
    }

    fn current_ask(&self) -> Option<(String, super::nodes::ask::Ask)> {
        let Waiting::Ask(id) = &self.waiting else {
            return None;
        };
        match &self.hotline.plan.node(id)?.kind {
            Node::Ask(a) => Some((id.clone(), a.clone())),
            _ => None,
        }
    }

    fn on_input(
        &mut self,
        speech: Option<(&str, f32)>,
        digits: Option<&str>,
        actions: &mut Vec<Action>,
    ) {
        let Some((ask_id, ask)) = self.current_ask() else {
            self.record.reason = "input while not listening (ignored)".into();
            return;
        };
        self.record.path.push(ask_id.clone());
        let hotline = self.hotline.clone();
        let plan = &hotline.plan;
        let handlers = plan.handlers.clone();
        if self.turn > plan.settings.max_turns {
            return self.handler_or_end(
                handlers.max_turns.map(|r| r.name),
                &format!("more than {} turns", plan.settings.max_turns),
                DecisionKind::Transfer,
                actions,
            );
        }
        if let Some((text, confidence)) = speech {
            if confidence < plan.settings.min_asr_confidence {
                // Whisper's sentences made of noise or music: not a request, and not a
                // value for a slot; the record keeps what was heard for the trainers.
                return self.no_match(
                    &ask,
                    &format!(
                        "recognition unsure ({confidence:.2} < {:.2})",
                        plan.settings.min_asr_confidence
                    ),
                    actions,
                );
            }
            let mood = sentiment::score(text);
            self.record.sentiment = mood.score;
            // Repeated failure raises frustration too.
            let frustration = mood.score + 0.2 * self.failures as f32;
            if frustration >= plan.settings.anger_threshold && handlers.angry.is_some() {
                let reason = if mood.cues.is_empty() {
                    format!("{} failed turns in a row", self.failures)
                } else {
                    format!("caller sounds upset ({})", mood.cues.join(", "))
                };
                return self.handler_or_end(
                    handlers.angry.map(|r| r.name),
                    &reason,
                    DecisionKind::Transfer,
                    actions,
                );
            }
            let lowered = text.to_lowercase();
            if REPEAT.iter().any(|r| lowered.contains(r)) && lowered.split_whitespace().count() <= 6
            {
                self.record.reason = "caller asked to repeat".into();
                let prompt = self.last_prompt.clone();
                self.say(actions, &prompt, ask.barge_in);
                self.listen(&ask, actions);
                return;
            }
            // One embedding serves the router and the knowledge base.
            let embedding = hotline.embedder.embed(text);
            let m = hotline.router.classify_embedded(&embedding, text);
            self.record.intent = m.intent.clone();
            self.record.confidence = m.confidence;
            self.record.out_of_scope = m.out_of_scope;
            let sure = |name: &str| {
                m.intent.as_deref() == Some(name) && m.confidence >= plan.settings.min_confidence
            };
            if sure("agent") && handlers.agent.is_some() {
                return self.handler_or_end(
                    handlers.agent.map(|r| r.name),
                    "caller asked for a human",
                    DecisionKind::Transfer,
                    actions,
                );
            }
            if sure("goodbye") && handlers.goodbye.is_some() && ask.slot.is_none() {
                return self.handler_or_end(
                    handlers.goodbye.map(|r| r.name),
                    "caller said goodbye",
                    DecisionKind::End,
                    actions,
                );
            }
            // An answer to "do you mean X or Y?"; anything else is a new request, and the
            // question is not asked twice in a row.
            let choice = self.choosing.take();
            // An intent the router is sure of, and how near its example came: a new request
            // outranks a pick by content that is no nearer.
            let intent_nearest = sure(m.intent.as_deref().unwrap_or("")).then_some(m.nearest);
            if let Some(c) = &choice
                && let Some(id) = self.chosen(c, text, &embedding, intent_nearest)
            {
                let question = c.question.clone();
                return self.answer_from_kb(
                    &id,
                    &question,
                    "chosen by the caller",
                    &ask_id,
                    actions,
                );
            }
            if self.confirming.is_some() {
                return self.on_confirm_answer(text, Some(confidence), &ask_id, &ask, actions);
            }
            self.hear_slots_anywhere(text, confidence, &ask);
            if let Some(other) = &ask.other
                && let Some(request) = self.request_instead(&ask, text, &m, &embedding)
            {
                let to = other.name.clone();
                match request {
                    Request::Intent(intent) => self.take_intent(&intent, text, m.confidence),
                    Request::Kb(id) => self.take_kb(&id, text, "clear match"),
                }
                self.record.reason = format!("{}: asked instead of answering", self.record.reason);
                return self.leave_ask(Some(to), actions);
            }
            if let Some((slot, _)) = &ask.slot {
                return self.fill_slot(slot, text, Some(confidence), &ask_id, &ask, actions);
            }
            // The knowledge base wins when it fits and the intent is unsure or absent.
            if ask.kb
                && let Some(kb) = hotline.kb.best_embedded(&embedding, text)
            {
                self.record.kb_score = Some(kb.score);
                // A confident intent keeps the turn unless a question variant is closer to
                // what was said than any intent example is.
                let unsure = m.intent.is_none()
                    || m.confidence < plan.settings.min_confidence
                    || kb.score >= m.nearest;
                if kb.score >= plan.settings.kb_threshold && unsure {
                    if kb.clear() {
                        let why = format!("score {:.2}", kb.score);
                        return self.answer_from_kb(&kb.id, text, &why, &ask_id, actions);
                    }
                    if choice.is_none() {
                        // Two entries too close to call: a wrong answer is worse than asking.
                        return self.ask_which(&kb, text, &ask, actions);
                    }
                }
            }
            let expected = ask.intents.is_empty()
                || ask
                    .intents
                    .iter()
                    .any(|(i, _)| m.intent.as_deref() == Some(i));
            match &m.intent {
                Some(intent) if m.confidence >= plan.settings.min_confidence && expected => {
                    self.take_intent(intent, text, m.confidence);
                    self.accepted(&ask_id, actions);
                }
                Some(intent) if !expected => self.no_match(
                    &ask,
                    &format!("intent `{intent}` not expected here"),
                    actions,
                ),
                Some(_) => self.no_match(
                    &ask,
                    &format!("low confidence ({:.2})", m.confidence),
                    actions,
                ),
                None => self.no_match(
                    &ask,
                    &format!(
                        "out of scope (nearest example {:.2} < {:.2})",
                        m.nearest, hotline.router.oos_threshold
                    ),
                    actions,
                ),
            }
        } else if let Some(d) = digits {
            if let Some(c) = self.choosing.take()
                && let Some(i) = values::which_of_two(d)
            {
                let id = c.options[i].clone();
                return self.answer_from_kb(
                    &id,
                    &c.question,
                    "chosen on the keypad",
                    &ask_id,
                    actions,
                );
            }
            if self.confirming.is_some() {
                return self.on_confirm_answer(d, None, &ask_id, &ask, actions);
            }
            if let Some((slot, _)) = &ask.slot {
                return self.fill_slot(slot, d, None, &ask_id, &ask, actions);
            }
            if d.starts_with('0') && handlers.agent.is_some() {
                return self.handler_or_end(
                    handlers.agent.map(|r| r.name),
                    "caller pressed 0 for a human",
                    DecisionKind::Transfer,
                    actions,
                );
            }
            self.no_match(&ask, &format!("keypad `{d}` means nothing here"), actions);
        }
    }

    /// The ask's slot from what the caller said (`confidence` from recognition) or keyed
    /// (`confidence` None): accepted, read back when unsure, or not understood.
    fn fill_slot(
        &mut self,
        slot: &str,
        input: &str,
        confidence: Option<f32>,
        ask_id: &str,
        ask: &super::nodes::ask::Ask,
        actions: &mut Vec<Action>,
    ) {
        let hotline = self.hotline.clone();
        let Some(def) = hotline.plan.slot(slot) else {
            return;
        };
        let today = self.today();
        match values::value(&def.kind, input, confidence.is_none(), today) {
            Some(v) => {
                let heard = Heard {
                    slot: slot.to_string(),
                    value: v,
                    confidence: confidence.unwrap_or(1.0),
                };
                if self.needs_confirming(ask, heard.confidence) {
                    return self.confirm(ask, heard, actions);
                }
                self.set_slot(slot, &heard.value, "");
                self.accepted(ask_id, actions);
            }
            None => {
                let why = match &def.kind {
                    SlotKind::Digits { min, max } => {
                        format!("no {min}-{max} digit `{slot}` in the input")
                    }
                    SlotKind::YesNo => "neither yes nor no".to_string(),
                    other => format!("no {} for `{slot}` in the input", other.name()),
                };
                self.no_match(ask, &why, actions)
            }
        }
    }

    pub(in crate::dialplan) fn set_slot(&mut self, slot: &str, value: &str, how: &str) {
        self.record
            .slots
            .insert(slot.to_string(), value.to_string());
        self.vars.insert(slot.to_string(), value.to_string());
        if let Some(def) = self.hotline.plan.slot(slot)
            && matches!(def.kind, SlotKind::Rating { .. })
        {
            self.record.survey = value.parse().ok();
        }
        self.confirming = None;
        self.record.reason = if how.is_empty() {
            format!("slot `{slot}` = {value}")
        } else {
            format!("slot `{slot}` = {value} ({how})")
        };
    }

    /// Whether a value heard with `confidence` is read back before it is used.
    pub(in crate::dialplan) fn needs_confirming(
        &self,
        ask: &super::nodes::ask::Ask,
        confidence: f32,
    ) -> bool {
        ask.confirm
            .unwrap_or(confidence < self.hotline.plan.settings.confirm_below)
    }

    /// Reads `heard` back and listens for a yes, a no, or a correction.
    pub(in crate::dialplan) fn confirm(
        &mut self,
        ask: &super::nodes::ask::Ask,
        heard: Heard,
        actions: &mut Vec<Action>,
    ) {
        let question = self.confirm_question(&heard);
        self.record.reason = format!(
            "reading `{}` = {} back (recognition confidence {:.2})",
            heard.slot, heard.value, heard.confidence
        );
        self.confirming = Some(heard);
        self.last_prompt = question.clone();
        self.say(actions, &question, ask.barge_in);
        self.listen(ask, actions);
    }

    fn confirm_question(&self, heard: &Heard) -> String {
        let plan = &self.hotline.plan;
        let spoken = plan.slot(&heard.slot).map_or(heard.value.clone(), |d| {
            values::spoken(&d.kind, &heard.value, plan.language)
        });
        let template = Phrase::ConfirmValue.text(plan);
        // "3 p.m." ends with a point of its own.
        template.replace("{{value}}", &spoken).replace("..", ".")
    }

    /// The caller's answer to "I heard X. Is that right?": a new value is a correction ("no,
    /// 4 7 2 1 9 9"), kept if heard surely and read back if not; a yes keeps X; a no asks
    /// again; anything else repeats the question.
    fn on_confirm_answer(
        &mut self,
        input: &str,
        confidence: Option<f32>,
        ask_id: &str,
        ask: &super::nodes::ask::Ask,
        actions: &mut Vec<Action>,
    ) {
        let Some(heard) = self.confirming.clone() else {
            return;
        };
        let hotline = self.hotline.clone();
        let Some(def) = hotline.plan.slot(&heard.slot) else {
            return;
        };
        let typed = confidence.is_none();
        let answer = if typed {
            values::value(&SlotKind::YesNo, input, true, self.today()).map(|v| v == "yes")
        } else {
            slots::yes_no(input)
        };
        let correction = values::value(&def.kind, input, typed, self.today())
            .filter(|_| def.kind != SlotKind::YesNo);
        match (correction, answer) {
            (Some(v), _) if v != heard.value => {
                let fresh = Heard {
                    slot: heard.slot.clone(),
                    value: v,
                    confidence: confidence.unwrap_or(1.0),
                };
                if fresh.confidence < hotline.plan.settings.confirm_below {
                    self.confirm(ask, fresh, actions);
                    return;
                }
                self.set_slot(&fresh.slot, &fresh.value, "corrected by the caller");
                self.accepted(ask_id, actions);
            }
            (_, Some(true)) | (Some(_), None) => {
                self.set_slot(&heard.slot, &heard.value, "confirmed by the caller");
                self.accepted(ask_id, actions);
            }
            (_, Some(false)) => {
                self.no_match(
                    ask,
                    &format!("the caller said `{}` was not {}", heard.slot, heard.value),
                    actions,
                );
            }
            (None, None) => {
                if self.no_match + 1 > ask.no_match.len().max(1) {
                    // As often as the ask's own reprompts allow, then its failure path.
                    return self.no_match(ask, "no answer to the read-back", actions);
                }
                self.no_match += 1;
                self.failures += 1;
                self.record.reason = "not understood: neither yes nor no to the read-back".into();
                let question = self.confirm_question(&heard);
                self.say(actions, &question, ask.barge_in);
                self.listen(ask, actions);
            }
        }
    }

    /// Values in `text` for the dialplan's other slots, kept for when the flow asks.
    fn hear_slots_anywhere(&mut self, text: &str, confidence: f32, ask: &super::nodes::ask::Ask) {
        let hotline = self.hotline.clone();
        let asking = ask.slot.as_ref().map(|(s, _)| s.as_str());
        let defs = hotline
            .plan
            .slots
            .iter()
            .filter(|d| Some(d.name.as_str()) != asking);
        for (slot, value) in values::heard_anywhere(defs, text, self.today()) {
            self.record.slots.insert(slot.clone(), value.clone());
            self.heard.insert(
                slot.clone(),
                Heard {
                    slot,
                    value,
                    confidence,
                },
            );
        }
    }

    /// The ask is answered from knowledge entry `id`: the flow's `kb_id` is set and the ask
    /// moves on (its next node reads the answer).
    fn answer_from_kb(
        &mut self,
        id: &str,
        question: &str,
        why: &str,
        ask_id: &str,
        actions: &mut Vec<Action>,
    ) {
        self.take_kb(id, question, why);
        self.accepted(ask_id, actions);
    }

    /// The caller's request is intent `intent`: the flow sees it in its variables.
    fn take_intent(&mut self, intent: &str, text: &str, confidence: f32) {
        self.vars.insert("intent".into(), intent.to_string());
        self.vars.insert("kb_id".into(), String::new());
        self.vars.insert("utterance".into(), text.to_string());
        self.vars
            .insert("confidence".into(), format!("{confidence:.2}"));
        self.record.reason = format!("intent `{intent}` ({confidence:.2})");
    }

    /// The caller's question is knowledge entry `id`: the flow sees it in its variables.
    fn take_kb(&mut self, id: &str, question: &str, why: &str) {
        self.record.kb = Some(id.to_string());
        self.vars.insert("kb_id".into(), id.to_string());
        self.vars.insert("intent".into(), String::new());
        self.vars.insert("utterance".into(), question.to_string());
        self.record.reason = format!("knowledge base entry `{id}` ({why})");
    }

    /// At an ask with `other` (see `nodes::ask`): the reply as a request instead of the
    /// slot's value: no value in it (or a "no" to a yes/no question), and an intent the
    /// router is sure of that no global handler takes, or (with `kb: true`) a clear knowledge
    /// entry (the one nearer what was said, when both).
    fn request_instead(
        &self,
        ask: &super::nodes::ask::Ask,
        text: &str,
        m: &crate::nlu::intent::IntentMatch,
        embedding: &[f32],
    ) -> Option<Request> {
        let plan = &self.hotline.plan;
        let def = plan.slot(&ask.slot.as_ref()?.0)?;
        let value = values::value(&def.kind, text, false, self.today());
        let declined = def.kind == SlotKind::YesNo && value.as_deref() == Some("no");
        if value.is_some() && !declined {
            return None;
        }
        let handled = |i: &str| {
            (i == "agent" && plan.handlers.agent.is_some())
                || (i == "goodbye" && plan.handlers.goodbye.is_some())
        };
        let intent = (m.intent.as_deref()).filter(|i| {
            !m.out_of_scope && m.confidence >= plan.settings.min_confidence && !handled(i)
        });
        let kb = (self.hotline.kb.best_embedded(embedding, text))
            .filter(|k| ask.kb && k.score >= plan.settings.kb_threshold && k.clear());
        match (intent, kb) {
            (Some(_), Some(k)) if k.score >= m.nearest => Some(Request::Kb(k.id)),
            (Some(i), _) => Some(Request::Intent(i.to_string())),
            (None, Some(k)) => Some(Request::Kb(k.id)),
            (None, None) => None,
        }
    }

    /// A knowledge entry's topic as spoken in "do you mean X or Y?".
    fn kb_topic<'a>(&'a self, id: &'a str) -> &'a str {
        self.hotline.kb.entry(id).map_or(id, |e| e.topic.as_str())
    }

    fn choice_question(&self, c: &Choice) -> String {
        let plan = &self.hotline.plan;
        let template = Phrase::ChooseEntry.text(plan);
        template
            .replace("{{first}}", self.kb_topic(&c.options[0]))
            .replace("{{second}}", self.kb_topic(&c.options[1]))
    }

    /// "Do you mean X or Y?" for a question between two knowledge entries.
    fn ask_which(
        &mut self,
        kb: &crate::nlu::kb::KbMatch,
        text: &str,
        ask: &super::nodes::ask::Ask,
        actions: &mut Vec<Action>,
    ) {
        let c = Choice {
            options: [kb.id.clone(), kb.runner_up_id.clone()],
            question: text.to_string(),
        };
        self.record.reason = format!(
            "between knowledge entries `{}` ({:.2}) and `{}` ({:.2}): asked which",
            kb.id, kb.score, kb.runner_up_id, kb.runner_up
        );
        let question = self.choice_question(&c);
        self.last_prompt = question.clone();
        self.say(actions, &question, ask.barge_in);
        self.choosing = Some(c);
        self.listen(ask, actions);
    }

    /// Which offered entry an answer to "do you mean X or Y?" picks: by position ("the
    /// second one"), else by what it says, if it is clearly nearer one entry (its topic,
    /// questions or answer) than the other and not clearly farther than the nearest example
    /// of an intent the router is sure of (`intent_nearest`). None: "neither", or something
    /// else asked.
    fn chosen(
        &self,
        c: &Choice,
        text: &str,
        e: &[f32],
        intent_nearest: Option<f32>,
    ) -> Option<String> {
        if let Some(i) = values::which_of_two(text) {
            return Some(c.options[i].clone());
        }
        if values::refuses_both(text) {
            return None;
        }
        let kb = &self.hotline.kb;
        let all = kb.choice_scores(e, text);
        let score = |id: &str| Some(all[kb.entries().iter().position(|x| x.id == id)?]);
        let (a, b) = (score(&c.options[0])?, score(&c.options[1])?);
        let floor = self.hotline.plan.settings.kb_threshold - crate::nlu::kb::MARGIN;
        let (best, high, low) = if a >= b { (0, a, b) } else { (1, b, a) };
        // The caller was just asked to choose, so a reply near one option is a choice unless
        // an intent's example is clearly nearer: "the delivery time" (0.74 to the delivery
        // entry, 0.76 to a delivery-problem example) chooses; "my package is late" (0.40
        // against 0.71) is a new request.
        let beats_intent = intent_nearest.is_none_or(|n| high >= n - CHOICE_SLACK);
        (high >= floor && high - low >= crate::nlu::kb::MARGIN && beats_intent)
            .then(|| c.options[best].clone())
    }

    /// The ask got what it wanted: on to its `next`.
    fn accepted(&mut self, ask_id: &str, actions: &mut Vec<Action>) {
        let next = self.hotline.plan.node(ask_id).and_then(|n| n.next.clone());
        self.leave_ask(next.map(|n| n.name), actions);
    }

    /// The ask got what it waited for: on to `to`.
    fn leave_ask(&mut self, to: Option<String>, actions: &mut Vec<Action>) {
        self.no_input = 0;
        self.no_match = 0;
        self.failures = 0;
        match to {
            Some(n) => self.run(&n, actions),
            None => self.handler_or_end(None, "ask has no next", DecisionKind::Transfer, actions),
        }
    }

    fn no_match(&mut self, ask: &super::nodes::ask::Ask, why: &str, actions: &mut Vec<Action>) {
        // The ask's prompt comes again (or its failure path): a read-back or a choice in
        // progress ends.
        self.confirming = None;
        self.choosing = None;
        self.no_match += 1;
        self.failures += 1;
        self.record.reason = format!("not understood: {why}");
        if let Some(reprompt) = ask.no_match.get(self.no_match - 1) {
            let text = reprompt.text.clone();
            self.say(actions, &text, ask.barge_in);
            let prompt = ask.prompt.text.clone();
            self.say(actions, &prompt, ask.barge_in);
            self.listen(ask, actions);
        } else {
            let target = ask
                .fail
                .clone()
                .or(self.hotline.plan.handlers.no_match.clone())
                .map(|r| r.name);
            let reason = format!("not understood {} times ({why})", self.no_match);
            self.handler_or_end(target, &reason, DecisionKind::Transfer, actions);
        }
    }

    fn on_no_input(&mut self, actions: &mut Vec<Action>) {
        let Some((ask_id, ask)) = self.current_ask() else {
            return;
        };
        self.record.path.push(ask_id);
        self.no_input += 1;
        self.record.reason = "no input".into();
        // Silence after "do you mean X or Y?" or a read-back: that question again, not the
        // ask's prompt (as often as the ask's own silence reprompts allow).
        let pending = match (&self.choosing, &self.confirming) {
            (Some(c), _) => Some(self.choice_question(c)),
            (None, Some(heard)) => Some(self.confirm_question(heard)),
            (None, None) => None,
        };
        if let Some(question) = pending
            && self.no_input <= ask.no_input.len().max(1)
        {
            self.say(actions, &question, ask.barge_in);
            self.listen(&ask, actions);
            return;
        }
        self.choosing = None;
        if let Some(reprompt) = ask.no_input.get(self.no_input - 1) {
            let text = reprompt.text.clone();
            self.say(actions, &text, ask.barge_in);
            self.listen(&ask, actions);
        } else {
            let target = ask
                .fail
                .clone()
                .or(self.hotline.plan.handlers.no_input.clone())
                .map(|r| r.name);
            let reason = format!("no input {} times", self.no_input);
            self.handler_or_end(target, &reason, DecisionKind::Transfer, actions);
        }
    }

    pub(in crate::dialplan) fn listen(
        &mut self,
        ask: &super::nodes::ask::Ask,
        actions: &mut Vec<Action>,
    ) {
        let expect = match (&ask.slot, ask.intents.is_empty()) {
            (Some((s, _)), _) if self.confirming.is_some() => format!("read-back of slot {s}"),
            (Some((s, _)), _) => format!("slot {s}"),
            (None, true) => "any intent".to_string(),
            (None, false) => ask
                .intents
                .iter()
                .map(|(i, _)| i.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        };
        let digits_min = ask
            .slot
            .as_ref()
            .filter(|_| self.confirming.is_none())
            .and_then(|(s, _)| match self.hotline.plan.slot(s).map(|d| &d.kind) {
                Some(super::model::SlotKind::Digits { min, .. }) => Some(*min),
                _ => None,
            });
        actions.push(Action::Listen {
            timeout_ms: ask
                .timeout_ms
                .unwrap_or(self.hotline.plan.settings.no_input_ms),
            dtmf_max: ask.dtmf_max,
            expect,
            digits_min,
        });
    }

    fn on_http(&mut self, result: Result<(u16, String), String>, actions: &mut Vec<Action>) {
        let Waiting::Http(id) = self.waiting.clone() else {
            return;
        };
        let Some(Node::Http(h)) = self.hotline.plan.node(&id).map(|n| n.kind.clone()) else {
            return;
        };
        self.record.input = "(backend reply)".into();
        self.record.path.push(id.clone());
        // A lookup the caller asked for answers them; one made before they said anything
        // (who is calling?) only prepares the call, and does not make it self-served.
        let answered = if self.turn > 0 {
            DecisionKind::Answer
        } else {
            DecisionKind::Dialplan
        };
        if let (Ok((404, _)), Some(nf)) = (&result, &h.not_found) {
            self.record.decision = answered;
            self.record.reason = "backend: not found".into();
            let target = nf.name.clone();
            self.run(&target, actions);
            return;
        }
        let parsed = result.and_then(|(status, body)| {
            if !(200..300).contains(&status) {
                return Err(format!("HTTP {status}"));
            }
            serde_json::from_str::<serde_json::Value>(&body).map_err(|e| format!("bad JSON: {e}"))
        });
        match parsed {
            Ok(json) => {
                for (var, path) in &h.set {
                    let pointer = format!("/{}", path.replace('.', "/"));
                    let value = match json.pointer(&pointer) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(v) => v.to_string(),
                    };
                    self.vars.insert(var.clone(), value);
                }
                self.record.decision = answered;
                self.record.reason = "backend lookup answered".into();
                let next = self.hotline.plan.node(&id).and_then(|n| n.next.clone());
                match next {
                    Some(n) => self.run(&n.name, actions),
                    None => self.handler_or_end(
                        None,
                        "http has no next",
                        DecisionKind::Transfer,
                        actions,
                    ),
                }
            }
            Err(why) => {
                self.record.reason = format!("backend failed: {why}");
                let target = h.error.name.clone();
                self.run(&target, actions);
            }
        }
    }

    /// The caller's message ended: on to the voicemail node's `next`, or thanks and goodbye.
    fn on_message(&mut self, ms: u64, actions: &mut Vec<Action>) {
        let Waiting::Message(id) = self.waiting.clone() else {
            return;
        };
        self.waiting = Waiting::Nothing;
        self.record.input = "(message)".into();
        self.record.reason = if ms == 0 {
            "voicemail: the caller left no message".into()
        } else {
            format!("voicemail: a message of {:.0} s", ms as f64 / 1000.0)
        };
        self.transcript
            .push(format!("bot: {}", self.record.reason.clone()));
        match self.hotline.plan.node(&id).and_then(|n| n.next.clone()) {
            Some(next) => self.run(&next.name, actions),
            None => {
                let thanks = Phrase::MessageThanks.text(&self.hotline.plan).to_string();
                self.say(actions, &thanks, false);
                actions.push(Action::Hangup {
                    reason: self.record.reason.clone(),
                });
                self.record.decision = DecisionKind::End;
                self.waiting = Waiting::Ended;
            }
        }
    }

    /// Queues a callback for `number` by an agent of `queue`, with what a transfer would
    /// carry (reason, transcript, priority).
    pub(in crate::dialplan) fn callback(
        &mut self,
        queue: &str,
        number: &str,
        actions: &mut Vec<Action>,
    ) {
        let reason = if self.record.reason.is_empty() {
            "callback requested".to_string()
        } else {
            self.record.reason.clone()
        };
        actions.push(Action::Callback {
            queue: queue.to_string(),
            number: number.to_string(),
            reason,
            transcript: self.transcript.clone(),
            priority: self.priority(),
        });
        self.record.reason = format!("callback to {number} queued for {queue}");
    }

    /// A caller's place in a queue's line: an upset caller first, then one the bot failed,
    /// then the rest (the issue's order).
    fn priority(&self) -> u8 {
        let frustration = self.record.sentiment + 0.2 * self.failures as f32;
        if frustration >= self.hotline.plan.settings.anger_threshold {
            PRIORITY_UPSET
        } else if self.failures + self.no_match + self.no_input > 0 {
            PRIORITY_FAILED
        } else {
            0
        }
    }

    pub(in crate::dialplan) fn transfer(
        &mut self,
        target: Target,
        reason: &str,
        fallback: Option<String>,
        priority: Option<u8>,
        actions: &mut Vec<Action>,
    ) {
        self.transfer_fallback = fallback;
        let priority = priority.unwrap_or_else(|| self.priority());
        // An earlier transfer's keys are not this one's (the transfer node sets its own).
        self.transfer_keys.clear();
        self.transfer_options = None;
        let target = match target {
            Target::Queue(q) => format!("queue:{q}"),
            Target::Uri(u) => u,
        };
        actions.push(Action::Transfer {
            target,
            reason: reason.to_string(),
            transcript: self.transcript.clone(),
            priority,
        });
        self.record.decision = DecisionKind::Transfer;
        self.waiting = Waiting::Transferred;
    }

    /// Walks nodes from `id` until the call waits (ask, http) or ends.
    fn run(&mut self, id: &str, actions: &mut Vec<Action>) {
        let hotline = self.hotline.clone();
        let plan = &hotline.plan;
        let mut id = id.to_string();
        for _ in 0..MAX_STEPS {
            let Some(node) = plan.node(&id) else { break };
            self.record.path.push(id.clone());
            let next = node.next.as_ref().map(|r| r.name.clone());
            // Each kind's own file says what entering it does.
            let go = match node.kind.enter(&id, next, self, actions) {
                Walk::Go(n) => n,
                Walk::Wait => return,
            };
            match go {
                Some(n) => id = n,
                None => break,
            }
        }
        // A walk that went nowhere (cannot happen in a checked dialplan): hand over.
        self.handler_or_end(
            None,
            "the dialplan walk did not reach a prompt",
            DecisionKind::Transfer,
            actions,
        );
    }
}

/// The language name for ASR ("en", "zh").
pub fn language_code(l: Language) -> &'static str {
    match l {
        Language::English => "en",
        Language::Mandarin => "zh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::intent::BagOfWords;

    const PLAN: &str = r#"
name: unit
settings: { max_turns: 6, min_confidence: 0.2 }
intents:
  status:
    examples: [where is my order, order status, track my order]
  agent:
    examples: [talk to a human, a human please, a real human person]
slots:
  num: { type: digits, min_digits: 4, max_digits: 6 }
prompts:
  menu: "What do you need?"
handlers: { agent: human, no_input: human, no_match: human, max_turns: human }
start: menu
nodes:
  menu:
    ask: { prompt: menu, no_input: ["Hello?"], no_match: ["Say it again?"] }
    next: route
  route:
    route: { status: get_num, default: menu }
  get_num:
    ask: { prompt: "Your number?", slot: num, dtmf: 6, no_input: ["Number?"], no_match: ["Four to six digits please."] }
    next: lookup
  lookup:
    http: { url: "http://127.0.0.1:9/orders/{{num}}", timeout_ms: 100, filler: "One moment.", set: { status: status } }
    next: tell
    error: sorry
  tell:
    say: "It is {{status}}."
    next: menu
  sorry:
    say: "The order system is down."
    next: human
  human:
    transfer: { queue: general, reason: "needs a person" }
"#;

    fn call() -> CallEngine {
        let plan = crate::dialplan::load_str("unit.yaml", PLAN).unwrap();
        CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        )
    }

    fn speech(t: &str) -> Event {
        Event::Speech {
            text: t.into(),
            confidence: 0.9,
        }
    }

    fn transfer_priority(actions: &[Action]) -> Option<u8> {
        actions.iter().find_map(|a| match a {
            Action::Transfer { priority, .. } => Some(*priority),
            _ => None,
        })
    }

    #[test]
    fn a_caller_the_bot_failed_or_who_is_upset_goes_first_in_the_queue() {
        // Asked for a human at once: the usual place.
        let mut c = call();
        c.handle(Event::Start);
        let s = c.handle(speech("a human please"));
        assert_eq!(transfer_priority(&s.actions), Some(0));
        // Not understood until the ask's reprompts ran out: ahead of those.
        let mut c = call();
        c.handle(Event::Start);
        c.handle(speech("zebra crossing"));
        let s = c.handle(speech("zebra crossing"));
        assert_eq!(transfer_priority(&s.actions), Some(PRIORITY_FAILED));
        // Failed and upset (this plan has no `angry` handler: the no-match one hands over):
        // first of all.
        let mut c = call();
        c.handle(Event::Start);
        c.handle(speech("zebra crossing"));
        let s = c.handle(speech(
            "this is ridiculous, I am furious, useless stupid machine",
        ));
        assert_eq!(transfer_priority(&s.actions), Some(PRIORITY_UPSET), "{s:?}");
        // The node's own priority wins; out of range is refused with its place.
        let own = PLAN.replace(
            "reason: \"needs a person\"",
            "reason: \"needs a person\", priority: 7",
        );
        let plan = crate::dialplan::load_str("unit.yaml", &own).unwrap();
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        assert_eq!(
            transfer_priority(&c.handle(speech("a human please")).actions),
            Some(7)
        );
        let bad = PLAN.replace(
            "reason: \"needs a person\"",
            "reason: \"needs a person\", priority: 12",
        );
        let err = crate::dialplan::load_str("unit.yaml", &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("priority 12 is out of range"), "{err}");
    }

    #[test]
    fn a_caller_no_agent_answers_for_can_leave_a_message() {
        let with_voicemail = PLAN.replace(
            "    transfer: { queue: general, reason: \"needs a person\" }\n",
            "    transfer: { queue: general, reason: \"needs a person\", fallback: message }\n  \
             message:\n    voicemail: { queue: general, max_s: 30 }\n",
        );
        let plan = crate::dialplan::load_str("unit.yaml", &with_voicemail).unwrap();
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        c.handle(speech("a human please"));
        let s = c.handle(Event::TransferFailed(
            "no agent was free within 60 s".into(),
        ));
        assert!(
            matches!(s.actions.first(), Some(Action::Say { text, .. }) if text.contains("after the tone")),
            "{:?}",
            s.actions
        );
        assert!(matches!(
            s.actions.last(),
            Some(Action::RecordMessage { queue, max_ms: 30_000 }) if queue == "general"
        ));
        // The message is recorded: thanks, and the call ends (the node has no `next`).
        let s = c.handle(Event::MessageRecorded { ms: 6200 });
        assert!(matches!(s.actions.last(), Some(Action::Hangup { .. })));
        let d = s.decision.unwrap();
        assert!(
            d.say.iter().any(|t| t.contains("call you back")),
            "{:?}",
            d.say
        );
        assert_eq!(d.reason, "voicemail: a message of 6 s");
        // A text caller's words at the voicemail are the message.
        let mut c = CallEngine::new(c.hotline().clone(), BTreeMap::new());
        c.handle(Event::Start);
        c.handle(speech("a human please"));
        c.handle(Event::TransferFailed("busy".into()));
        let s = c.handle(speech("please call me back about my refund"));
        assert_eq!(
            s.decision.unwrap().reason,
            "voicemail: a message of 3 s",
            "seven words, 400 ms each"
        );
        // Bad voicemail nodes are refused with their place.
        for (node, problem) in [
            ("voicemail: { max_s: 30 }", "needs the `queue`"),
            (
                "voicemail: { queue: general, max_s: 2 }",
                "max_s 2 is out of range",
            ),
        ] {
            let bad = with_voicemail.replace("voicemail: { queue: general, max_s: 30 }", node);
            let err = crate::dialplan::load_str("unit.yaml", &bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn a_caller_can_leave_their_number_to_be_called_back() {
        let with_callback = PLAN.replace(
            "    transfer: { queue: general, reason: \"needs a person\" }\n",
            "    transfer: { queue: general, reason: \"needs a person\", fallback: call_me }\n  \
             call_me:\n    callback: { queue: general }\n",
        );
        let plan = crate::dialplan::load_str("unit.yaml", &with_callback).unwrap();
        let hotline = Arc::new(Hotline::build(plan, Arc::new(BagOfWords)));
        let caller = |number: &str| {
            let vars = BTreeMap::from([("caller_number".to_string(), number.to_string())]);
            let mut c = CallEngine::new(hotline.clone(), vars);
            c.handle(Event::Start);
            c.handle(speech("a human please"));
            c.handle(Event::TransferFailed("no agent was free".into()))
        };
        let s = caller("555 1234");
        let queued = s.actions.iter().find_map(|a| match a {
            Action::Callback {
                queue,
                number,
                reason,
                ..
            } => Some((queue.as_str(), number.as_str(), reason.as_str())),
            _ => None,
        });
        assert_eq!(
            queued,
            Some(("general", "5551234", "transfer failed: no agent was free"))
        );
        let d = s.decision.unwrap();
        assert!(
            d.say
                .iter()
                .any(|t| t.contains("call you back at 5 5 5 1 2 3 4")),
            "{:?}",
            d.say
        );
        assert!(matches!(s.actions.last(), Some(Action::Hangup { .. })));
        // A hidden caller id cannot be called back: an apology, nothing queued.
        let s = caller("anonymous");
        assert!(
            !s.actions
                .iter()
                .any(|a| matches!(a, Action::Callback { .. }))
        );
        assert!(s.decision.unwrap().reason.contains("cannot be called back"));
        let bad = with_callback.replace("callback: { queue: general }", "callback: { number: x }");
        let err = crate::dialplan::load_str("unit.yaml", &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs the `queue`"), "{err}");
    }

    const BOOKING: &str = r#"
name: booking
settings: { confirm_below: 0.6 }
vars: { today: "2026-12-02" }
intents:
  book:
    examples: [book a repair, I want to book a visit, schedule an engineer]
slots:
  day: { type: date, tense: future }
  at: { type: time }
  deposit: { type: money }
  phone: { type: phone }
  ref: { type: code, min_length: 4, max_length: 8 }
prompts:
  menu: "What do you need?"
handlers: { no_input: human, no_match: human }
start: menu
nodes:
  menu:
    ask: { prompt: menu, no_input: ["Hello?"], no_match: ["Again?"] }
    next: ask_day
  ask_day:
    ask: { prompt: "Which day?", slot: day, no_input: ["Day?"], no_match: ["Which day, for example next Monday?"] }
    next: ask_at
  ask_at:
    ask: { prompt: "What time?", slot: at, no_input: ["Time?"], no_match: ["What time?"] }
    next: ask_deposit
  ask_deposit:
    ask: { prompt: "How much will you pay now?", slot: deposit, no_input: ["Amount?"], no_match: ["Amount?"] }
    next: ask_phone
  ask_phone:
    ask: { prompt: "Your phone number?", slot: phone, confirm: true, no_input: ["Phone?"], no_match: ["Phone?"] }
    next: ask_ref
  ask_ref:
    ask: { prompt: "Your reference?", slot: ref, no_input: ["Reference?"], no_match: ["Reference?"] }
    next: done
  done:
    hangup: "Booked {{day}} at {{at}}, {{deposit}} paid, we call {{phone}} about {{ref}}."
  human:
    transfer: { queue: general, reason: "needs a person" }
"#;

    #[test]
    fn every_slot_type_from_the_first_sentence_or_its_ask_with_read_backs() {
        let plan = crate::dialplan::load_str("booking.yaml", BOOKING).unwrap();
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        // Day and time in the first sentence: neither is asked for.
        let s = c.handle(speech(
            "I want to book a repair next Tuesday at half past four",
        ));
        let d = s.decision.unwrap();
        assert_eq!(d.slots["day"], "2026-12-08", "{d:?}");
        assert_eq!(d.slots["at"], "16:30");
        assert_eq!(d.say, vec!["How much will you pay now?"], "{d:?}");
        // Money said; an unsure one is read back, "yes" keeps it.
        let s = c.handle(Event::Speech {
            text: "twenty five dollars and fifty cents".into(),
            confidence: 0.5,
        });
        assert_eq!(
            s.decision.unwrap().say,
            vec!["I heard 25.50. Is that right?"]
        );
        let s = c.handle(speech("yes that's right"));
        let d = s.decision.unwrap();
        assert_eq!(d.slots["deposit"], "25.50");
        // `confirm: true`: even a sure phone number is read back; a correction replaces it.
        assert_eq!(d.say, vec!["Your phone number?"]);
        let s = c.handle(speech("oh seven seven oh oh nine oh oh one two three"));
        assert_eq!(
            s.decision.unwrap().say,
            vec!["I heard 0 7 7 0 0 9 0 0 1 2 3. Is that right?"]
        );
        let s = c.handle(Event::Speech {
            text: "no, 07700 900124".into(),
            confidence: 0.9,
        });
        let d = s.decision.unwrap();
        assert_eq!(d.slots["phone"], "07700900124", "{d:?}");
        assert_eq!(
            d.reason,
            "slot `phone` = 07700900124 (corrected by the caller)"
        );
        // A code spelled out; the booking is read out whole.
        let s = c.handle(speech("it's alpha bravo seven two"));
        let d = s.decision.unwrap();
        assert_eq!(d.slots["ref"], "AB72");
        assert_eq!(
            d.say,
            vec!["Booked 2026-12-08 at 16:30, 25.50 paid, we call 07700900124 about AB72."]
        );
    }

    #[test]
    fn a_read_back_answered_no_asks_again_and_silence_repeats_the_question() {
        let plan = crate::dialplan::load_str("booking.yaml", BOOKING).unwrap();
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        c.handle(speech("book a repair"));
        let s = c.handle(Event::Speech {
            text: "on friday".into(),
            confidence: 0.5,
        });
        let d = s.decision.unwrap();
        assert_eq!(
            d.say,
            vec!["I heard Friday the 4th of December 2026. Is that right?"]
        );
        assert!(d.slots.is_empty(), "not kept until confirmed");
        let s = c.handle(Event::NoInput);
        assert_eq!(
            s.decision.unwrap().say,
            vec!["I heard Friday the 4th of December 2026. Is that right?"]
        );
        let s = c.handle(speech("no"));
        let d = s.decision.unwrap();
        assert_eq!(
            d.say,
            vec!["Which day, for example next Monday?", "Which day?"],
            "{d:?}"
        );
        // Keys at a date ask: YYYYMMDD.
        let s = c.handle(Event::Dtmf("20261207".into()));
        let d = s.decision.unwrap();
        assert_eq!(d.slots["day"], "2026-12-07");
        assert_eq!(d.say, vec!["What time?"]);
    }

    #[test]
    fn a_read_back_not_answered_ends_as_the_asks_reprompts_allow_and_noise_asks_again() {
        let plan = crate::dialplan::load_str("booking.yaml", BOOKING).unwrap();
        let hotline = Arc::new(Hotline::build(plan, Arc::new(BagOfWords)));
        let unsure = |t: &str| Event::Speech {
            text: t.into(),
            confidence: 0.5,
        };
        let mut c = CallEngine::new(hotline.clone(), BTreeMap::new());
        c.handle(Event::Start);
        c.handle(speech("book a repair"));
        c.handle(Event::Dtmf("20261207".into()));
        let d = c.handle(unsure("at three")).decision.unwrap();
        assert_eq!(d.say, vec!["I heard 3 p.m. Is that right?"]);
        // Neither yes, no nor a time: the question again, once (the ask has one reprompt)...
        let d = c.handle(speech("what")).decision.unwrap();
        assert_eq!(d.say, vec!["I heard 3 p.m. Is that right?"]);
        // ...then the ask's failure path.
        let d = c.handle(speech("hmm")).decision.unwrap();
        assert_eq!(d.decision, DecisionKind::Transfer, "{d:?}");

        // Recognition too unsure at a read-back: the value is asked for again, and the next
        // answer is a value, not a yes to the old read-back.
        let mut c = CallEngine::new(hotline, BTreeMap::new());
        c.handle(Event::Start);
        c.handle(speech("book a repair"));
        c.handle(Event::Dtmf("20261207".into()));
        c.handle(unsure("at three"));
        let d = c
            .handle(Event::Speech {
                text: "I don't know what to do with it".into(),
                confidence: 0.38,
            })
            .decision
            .unwrap();
        assert!(d.reason.contains("recognition unsure"), "{d:?}");
        assert_eq!(d.say, vec!["What time?", "What time?"]);
        let d = c.handle(speech("ten o'clock")).decision.unwrap();
        assert_eq!(d.slots["at"], "10:00", "{d:?}");
    }

    #[test]
    fn slot_then_backend_reply_or_failure_with_a_spoken_fallback() {
        let mut c = call();
        let start = c.handle(Event::Start);
        assert_eq!(start.actions.last().unwrap().name(), "listen");
        let s = c.handle(speech("where is my order"));
        assert_eq!(
            s.decision.as_ref().unwrap().intent.as_deref(),
            Some("status")
        );
        let s = c.handle(Event::Dtmf("4721".into()));
        assert!(
            matches!(s.actions.last(), Some(Action::Http { url, timeout_ms: 100, .. }) if url.ends_with("/orders/4721")),
            "{:?}",
            s.actions
        );
        let s = c.handle(Event::HttpResponse {
            status: 200,
            body: r#"{"status":"shipped"}"#.into(),
        });
        let d = s.decision.unwrap();
        assert_eq!(d.decision, DecisionKind::Answer);
        assert!(d.say.iter().any(|t| t == "It is shipped."), "{:?}", d.say);
        // Again, and the backend fails: a spoken fallback, then a human, never silence.
        c.handle(speech("order status"));
        c.handle(Event::Dtmf("4721".into()));
        let s = c.handle(Event::HttpFailed("timed out after 100 ms".into()));
        let d = s.decision.unwrap();
        assert_eq!(d.decision, DecisionKind::Transfer);
        assert!(d.say.iter().any(|t| t == "The order system is down."));
        assert!(
            d.reason.contains("backend failed: timed out"),
            "{}",
            d.reason
        );
        assert!(
            matches!(s.actions.last(), Some(Action::Transfer { transcript, .. }) if transcript.iter().any(|l| l == "caller: order status"))
        );
        assert!(c.is_ended());
    }

    #[test]
    fn reprompts_escalate_then_the_handler_and_max_turns() {
        let mut c = call();
        c.handle(Event::Start);
        let s = c.handle(Event::NoInput);
        assert!(matches!(&s.actions[0], Action::Say { text, .. } if text == "Hello?"));
        let s = c.handle(Event::NoInput);
        assert_eq!(
            s.decision.unwrap().decision,
            DecisionKind::Transfer,
            "no-input handler after the reprompt"
        );

        let mut c = call();
        c.handle(Event::Start);
        let s = c.handle(speech("zzz qqq"));
        assert!(
            matches!(&s.actions[0], Action::Say { text, .. } if text == "Say it again?"),
            "{:?}",
            s
        );

        let plan =
            crate::dialplan::load_str("unit.yaml", &PLAN.replace("max_turns: 6", "max_turns: 2"))
                .unwrap();
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        c.handle(speech("where is my order"));
        c.handle(Event::Dtmf("12".into())); // too short: no-match reprompt, turn 2
        let s = c.handle(Event::Dtmf("1234".into())); // turn 3 > max_turns 2
        let d = s.decision.unwrap();
        assert_eq!(d.decision, DecisionKind::Transfer);
        assert!(d.reason.contains("more than 2 turns"), "{}", d.reason);
    }

    #[test]
    fn a_request_for_a_human_wins_at_any_ask() {
        let mut c = call();
        c.handle(Event::Start);
        c.handle(speech("where is my order"));
        let s = c.handle(speech("a human please"));
        let d = s.decision.unwrap();
        assert_eq!(
            (d.decision, d.reason.as_str()),
            (
                DecisionKind::Transfer,
                "caller asked for a human; needs a person"
            )
        );
        assert!(c.is_ended());
        // No agent free: the caller is told, not left in silence.
        let s = c.handle(Event::TransferFailed("queue general: no agent".into()));
        assert!(
            matches!(&s.actions[..], [Action::Say { .. }, Action::Hangup { .. }]),
            "{:?}",
            s.actions
        );
        assert!(
            c.handle(Event::NoInput).decision.is_none(),
            "nothing after the end"
        );
    }

    #[test]
    fn a_transfer_fallback_inside_a_flow_names_the_flow_node() {
        // Every reference a node kind lists is qualified inside a sub-flow: `busy` here is the
        // flow's own node, not an unknown top-level one.
        let source = r#"
name: flows
intents:
  agent:
    examples: [talk to a human, a person please, an agent]
start: first
nodes:
  first:
    call: helpdesk
    next: bye
  bye:
    hangup: "Goodbye."
flows:
  helpdesk:
    start: hand_over
    nodes:
      hand_over:
        transfer: { queue: general, reason: "test", fallback: busy }
      busy:
        say: "Nobody is free in the flow."
        next: done
      done:
        return: true
"#;
        let plan = crate::dialplan::load_str("flows.yaml", source).expect("loads");
        let node = plan.node("helpdesk/hand_over").expect("flow node");
        assert_eq!(node.kind.targets()[0].name, "helpdesk/busy");
        let mut c = CallEngine::new(
            Arc::new(Hotline::build(plan, Arc::new(BagOfWords))),
            BTreeMap::new(),
        );
        c.handle(Event::Start);
        let s = c.handle(Event::TransferFailed("no agent".into()));
        assert!(
            matches!(&s.actions[0], Action::Say { text, .. } if text == "Nobody is free in the flow."),
            "{:?}",
            s.actions
        );
    }
}
