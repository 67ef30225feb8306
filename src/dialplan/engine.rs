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
use super::nodes::{Node, transfer::Target};
use super::read::fill;
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
            Action::Hangup { .. } => "hangup",
        }
    }
}

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
enum Waiting {
    Nothing,
    Ask(String),
    Http(String),
    /// Handed over; the call ends unless the transfer fails.
    Transferred,
    Ended,
}

/// The most nodes one event may walk before the engine gives up and transfers.
const MAX_STEPS: usize = 200;

/// One call.
#[derive(Debug)]
pub struct CallEngine {
    hotline: Arc<Hotline>,
    vars: BTreeMap<String, String>,
    waiting: Waiting,
    returns: Vec<String>,
    turn: u32,
    no_input: usize,
    no_match: usize,
    /// Failed turns in a row across asks (repeated failure is frustration too).
    failures: usize,
    last_prompt: String,
    transcript: Vec<String>,
    /// Where the call goes if the transfer in progress fails (the transfer node's `fallback`).
    transfer_fallback: Option<String>,
    /// Transfers that failed on this call: after two the call ends rather than loop.
    transfer_failures: usize,
    /// Built during an event.
    record: Decision,
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

impl CallEngine {
    /// A call on `hotline`; `vars` override the dialplan's initial variables (e.g. the caller
    /// number, a backend address).
    pub fn new(hotline: Arc<Hotline>, vars: BTreeMap<String, String>) -> Self {
        let mut all = hotline.plan.vars.clone();
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
            transfer_failures: 0,
            record: empty_record(),
        }
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
                .is_some_and(|kb| kb.score >= settings.kb_threshold)
    }

    /// The caller's and bot's lines so far ("caller: ...", "bot: ...").
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    fn say(&mut self, actions: &mut Vec<Action>, text: &str, barge_in: bool) {
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
        let transfer_news = matches!(event, Event::TransferFailed(_) | Event::Hangup);
        if self.waiting == Waiting::Ended
            || (self.waiting == Waiting::Transferred && !transfer_news)
        {
            return Step {
                actions,
                decision: None,
            };
        }
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
                self.say(
                    &mut actions,
                    "Sorry, no colleague is free right now. Please call again later. Goodbye.",
                    false,
                );
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
                self.on_input(Some(&text), None, &mut actions);
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
                self.say(actions, "Let me connect you to a colleague.", false);
                self.transfer(Target::Queue("general".into()), reason, None, actions);
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

    fn on_input(&mut self, speech: Option<&str>, digits: Option<&str>, actions: &mut Vec<Action>) {
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
        if let Some(text) = speech {
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
            if let Some((slot, _)) = &ask.slot {
                return self.fill_slot(slot, text, &ask, actions);
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
                    self.record.kb = Some(kb.id.clone());
                    self.vars.insert("kb_id".into(), kb.id.clone());
                    self.vars.insert("intent".into(), String::new());
                    self.vars.insert("utterance".into(), text.to_string());
                    self.record.reason =
                        format!("knowledge base entry `{}` (score {:.2})", kb.id, kb.score);
                    self.accepted(&ask_id, actions);
                    return;
                }
            }
            let expected = ask.intents.is_empty()
                || ask
                    .intents
                    .iter()
                    .any(|(i, _)| m.intent.as_deref() == Some(i));
            match &m.intent {
                Some(intent) if m.confidence >= plan.settings.min_confidence && expected => {
                    self.vars.insert("intent".into(), intent.clone());
                    self.vars.insert("kb_id".into(), String::new());
                    self.vars.insert("utterance".into(), text.to_string());
                    self.vars
                        .insert("confidence".into(), format!("{:.2}", m.confidence));
                    self.record.reason = format!("intent `{intent}` ({:.2})", m.confidence);
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
            if let Some((slot, _)) = &ask.slot {
                return self.fill_slot(slot, d, &ask, actions);
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

    fn fill_slot(
        &mut self,
        slot: &str,
        input: &str,
        ask: &super::nodes::ask::Ask,
        actions: &mut Vec<Action>,
    ) {
        let plan = &self.hotline.plan;
        let Some(def) = plan.slot(slot) else { return };
        let value = match &def.kind {
            SlotKind::Digits { min, max } => {
                slots::digits(input).filter(|d| (*min..=*max).contains(&d.len()))
            }
            SlotKind::YesNo => {
                slots::yes_no(input).map(|b| if b { "yes".into() } else { "no".into() })
            }
        };
        match value {
            Some(v) => {
                self.record.slots.insert(slot.to_string(), v.clone());
                self.vars.insert(slot.to_string(), v.clone());
                self.record.reason = format!("slot `{slot}` = {v}");
                let Waiting::Ask(id) = self.waiting.clone() else {
                    return;
                };
                self.accepted(&id, actions);
            }
            None => {
                let why = match &def.kind {
                    SlotKind::Digits { min, max } => {
                        format!("no {min}-{max} digit `{slot}` in the input")
                    }
                    SlotKind::YesNo => "neither yes nor no".to_string(),
                };
                self.no_match(ask, &why, actions)
            }
        }
    }

    /// The ask got what it wanted: on to its `next`.
    fn accepted(&mut self, ask_id: &str, actions: &mut Vec<Action>) {
        self.no_input = 0;
        self.no_match = 0;
        self.failures = 0;
        let next = self.hotline.plan.node(ask_id).and_then(|n| n.next.clone());
        match next {
            Some(n) => self.run(&n.name, actions),
            None => self.handler_or_end(None, "ask has no next", DecisionKind::Transfer, actions),
        }
    }

    fn no_match(&mut self, ask: &super::nodes::ask::Ask, why: &str, actions: &mut Vec<Action>) {
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

    fn listen(&mut self, ask: &super::nodes::ask::Ask, actions: &mut Vec<Action>) {
        let expect = match (&ask.slot, ask.intents.is_empty()) {
            (Some((s, _)), _) => format!("slot {s}"),
            (None, true) => "any intent".to_string(),
            (None, false) => ask
                .intents
                .iter()
                .map(|(i, _)| i.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        };
        let digits_min =
            ask.slot
                .as_ref()
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
        if let (Ok((404, _)), Some(nf)) = (&result, &h.not_found) {
            self.record.decision = DecisionKind::Answer;
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
                self.record.decision = DecisionKind::Answer;
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

    fn transfer(
        &mut self,
        target: Target,
        reason: &str,
        fallback: Option<String>,
        actions: &mut Vec<Action>,
    ) {
        self.transfer_fallback = fallback;
        let target = match target {
            Target::Queue(q) => format!("queue:{q}"),
            Target::Uri(u) => u,
        };
        actions.push(Action::Transfer {
            target,
            reason: reason.to_string(),
            transcript: self.transcript.clone(),
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
            let go = match &node.kind {
                Node::Say(s) => {
                    self.say(actions, &s.speech.text, s.barge_in);
                    next
                }
                Node::Ask(a) => {
                    if self.waiting != Waiting::Ask(id.clone()) {
                        self.no_input = 0;
                        self.no_match = 0;
                    }
                    self.waiting = Waiting::Ask(id.clone());
                    self.last_prompt = fill(&a.prompt.text, |v| self.vars.get(v).cloned());
                    self.say(actions, &a.prompt.text, a.barge_in);
                    self.listen(a, actions);
                    return;
                }
                Node::Route(r) => {
                    let intent = self.vars.get("intent").cloned().unwrap_or_default();
                    let kb = self.vars.get("kb_id").is_some_and(|k| !k.is_empty());
                    let target = if kb && r.kb.is_some() {
                        r.kb.clone()
                    } else {
                        r.cases
                            .iter()
                            .find(|(i, _, _)| *i == intent)
                            .map(|(_, _, t)| t.clone())
                    };
                    Some(target.unwrap_or_else(|| r.default.clone()).name)
                }
                Node::Answer(a) => {
                    let entry_id = a
                        .entry
                        .as_ref()
                        .map(|(e, _)| e.clone())
                        .or_else(|| self.vars.get("kb_id").cloned().filter(|k| !k.is_empty()));
                    match entry_id.and_then(|e| hotline.kb.entry(&e).cloned()) {
                        Some(entry) => {
                            self.say(actions, &entry.answer, true);
                            self.vars.insert("kb_answer".into(), entry.answer.clone());
                            self.record.kb = Some(entry.id.clone());
                            self.record.decision = DecisionKind::Answer;
                            next
                        }
                        None => a.none.as_ref().map(|r| r.name.clone()).or(next),
                    }
                }
                Node::Http(h) => {
                    if let Some(f) = &h.filler {
                        self.say(actions, &f.text, true);
                    }
                    let url = fill(&h.url, |v| self.vars.get(v).map(|s| percent_encode(s)));
                    let body = h
                        .body
                        .as_ref()
                        .map(|b| fill(b, |v| self.vars.get(v).cloned()));
                    actions.push(Action::Http {
                        method: h.method.clone(),
                        url,
                        body,
                        timeout_ms: h.timeout_ms,
                    });
                    self.waiting = Waiting::Http(id.clone());
                    return;
                }
                Node::Set(s) => {
                    for (k, _, v) in &s.values {
                        let value = fill(v, |x| self.vars.get(x).cloned());
                        self.vars.insert(k.clone(), value);
                    }
                    next
                }
                Node::Branch(b) => Some(
                    b.cases
                        .iter()
                        .find(|(c, _)| c.holds(self.vars.get(&c.variable).map(String::as_str)))
                        .map_or(&b.otherwise, |(_, t)| t)
                        .name
                        .clone(),
                ),
                Node::Transfer(t) => {
                    if let Some(s) = &t.say {
                        self.say(actions, &s.text, false);
                    }
                    let reason = if t.reason.is_empty() {
                        self.record.reason.clone()
                    } else {
                        t.reason.clone()
                    };
                    if self.record.reason.is_empty() {
                        self.record.reason = reason.clone();
                    } else if !self.record.reason.contains(&reason) {
                        self.record.reason = format!("{}; {reason}", self.record.reason);
                    }
                    let fallback = t.fallback.as_ref().map(|f| f.name.clone());
                    self.transfer(t.target.clone(), &reason, fallback, actions);
                    return;
                }
                Node::Hangup(h) => {
                    if let Some(s) = &h.say {
                        self.say(actions, &s.text, false);
                    }
                    actions.push(Action::Hangup {
                        reason: self.record.reason.clone(),
                    });
                    self.record.decision = DecisionKind::End;
                    self.waiting = Waiting::Ended;
                    return;
                }
                Node::Goto(g) => Some(g.target.name.clone()),
                Node::Call(c) => {
                    if let Some(n) = next {
                        self.returns.push(n);
                    }
                    plan.flows.get(&c.flow).cloned()
                }
                Node::Return => self.returns.pop(),
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

/// Escapes what a URL cannot carry as is (spaces, non-ASCII, `#`, quotes); URL punctuation is
/// kept, so a variable may hold a whole base address (`http://host:port`).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b':'
            | b'/'
            | b'?'
            | b'&'
            | b'='
            | b'%'
            | b'@'
            | b'+'
            | b','
            | b';' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
}
