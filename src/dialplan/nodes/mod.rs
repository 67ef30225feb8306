//! Node kinds, one file each: how a node is read from YAML, which nodes it can lead to, what
//! it speaks, which `{{variables}}` it reads and which it sets, and what a call does on
//! entering it (its `NodeKind`). `Node` only dispatches; the engine keeps what kinds share
//! (speaking, listening for an ask's answer, read-backs, transfers, handlers).

pub mod answer;
pub mod ask;
pub mod branch;
pub mod call;
pub mod callback;
pub mod goto;
pub mod hangup;
pub mod http;
pub mod route;
pub mod say;
pub mod set;
pub mod transfer;
pub mod voicemail;

use super::model::{Ref, Speech};
use super::yaml::Pos;
use crate::dialplan::engine::{Action, CallEngine};

/// What a node kind says about itself, in its own file. A kind leaves out what it does not
/// have (a `goto` speaks nothing, a `say` sets nothing).
pub trait NodeKind {
    /// Nodes it can lead to, besides its `next`.
    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        Vec::new()
    }

    /// What it speaks.
    fn speech(&self) -> Vec<&Speech> {
        Vec::new()
    }

    /// Texts it fills from `{{variables}}` besides its speech (a URL, a value, a condition).
    fn templates(&self) -> Vec<(String, Pos)> {
        Vec::new()
    }

    /// Variables it sets.
    fn sets(&self) -> Vec<String> {
        Vec::new()
    }

    /// What a call does on walking into the node (`id` is its id, `next` its `next`): go on
    /// to a node, or wait there for the caller, a backend, a transfer or the end. The engine
    /// (`engine.rs`) keeps what every kind shares: speaking, listening, read-backs, transfers.
    fn enter(
        &self,
        id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk;
}

/// Where a call's walk goes after a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk {
    /// On to this node (None: nowhere; the engine hands the call over).
    Go(Option<String>),
    /// The call waits at this node.
    Wait,
}

/// Every node kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Say(say::Say),
    Ask(ask::Ask),
    Route(route::Route),
    Answer(answer::Answer),
    Http(http::Http),
    Set(set::Set),
    Branch(branch::Branch),
    Transfer(transfer::Transfer),
    Hangup(hangup::Hangup),
    Goto(goto::Goto),
    Call(call::Call),
    Voicemail(voicemail::Voicemail),
    Callback(callback::Callback),
    /// End of a sub-flow: back to the node after the `call`.
    Return,
}

/// The keys that name a node's kind.
pub const KINDS: &[&str] = &[
    "say",
    "ask",
    "route",
    "answer",
    "http",
    "set",
    "branch",
    "transfer",
    "hangup",
    "goto",
    "call",
    "voicemail",
    "callback",
    "return",
];

impl Node {
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Say(_) => "say",
            Node::Ask(_) => "ask",
            Node::Route(_) => "route",
            Node::Answer(_) => "answer",
            Node::Http(_) => "http",
            Node::Set(_) => "set",
            Node::Branch(_) => "branch",
            Node::Transfer(_) => "transfer",
            Node::Hangup(_) => "hangup",
            Node::Goto(_) => "goto",
            Node::Call(_) => "call",
            Node::Voicemail(_) => "voicemail",
            Node::Callback(_) => "callback",
            Node::Return => "return",
        }
    }

    /// The kind's own description (None for `return`, which has nothing to describe).
    fn described(&self) -> Option<&dyn NodeKind> {
        Some(match self {
            Node::Say(k) => k,
            Node::Ask(k) => k,
            Node::Route(k) => k,
            Node::Answer(k) => k,
            Node::Http(k) => k,
            Node::Set(k) => k,
            Node::Branch(k) => k,
            Node::Transfer(k) => k,
            Node::Hangup(k) => k,
            Node::Goto(k) => k,
            Node::Call(k) => k,
            Node::Voicemail(k) => k,
            Node::Callback(k) => k,
            Node::Return => return None,
        })
    }

    fn described_mut(&mut self) -> Option<&mut dyn NodeKind> {
        Some(match self {
            Node::Say(k) => k,
            Node::Ask(k) => k,
            Node::Route(k) => k,
            Node::Answer(k) => k,
            Node::Http(k) => k,
            Node::Set(k) => k,
            Node::Branch(k) => k,
            Node::Transfer(k) => k,
            Node::Hangup(k) => k,
            Node::Goto(k) => k,
            Node::Call(k) => k,
            Node::Voicemail(k) => k,
            Node::Callback(k) => k,
            Node::Return => return None,
        })
    }

    /// What a call does on walking into the node; `return` goes back to the node after the
    /// `call` that entered its flow.
    pub fn enter(
        &self,
        id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        match self.described() {
            Some(kind) => kind.enter(id, next, call, actions),
            None => Walk::Go(call.returns.pop()),
        }
    }

    /// Nodes this one can lead to, besides its `next`: each kind lists its own, and loading
    /// qualifies every one of them inside a sub-flow (so none can be missed there).
    pub fn targets_mut(&mut self) -> Vec<&mut Ref> {
        self.described_mut()
            .map_or_else(Vec::new, |k| k.targets_mut())
    }

    /// What the node speaks (prompts, reprompts, fillers): the prompt cache synthesises the
    /// fixed ones, and the checker looks for variables in them.
    pub fn speech(&self) -> Vec<&Speech> {
        self.described().map_or_else(Vec::new, |k| k.speech())
    }

    /// Every text the node fills from `{{variables}}` (its speech, a URL, a value, a
    /// condition), with where it is written.
    pub fn templates(&self) -> Vec<(String, Pos)> {
        let own = self.described().map_or_else(Vec::new, |k| k.templates());
        (self.speech().into_iter())
            .map(|s| (s.text.clone(), s.pos))
            .chain(own)
            .collect()
    }

    /// The variables the node sets.
    pub fn sets(&self) -> Vec<String> {
        self.described().map_or_else(Vec::new, |k| k.sets())
    }

    /// `targets_mut`, read-only (a copy: used when checking and reporting, not per call).
    pub fn targets(&self) -> Vec<Ref> {
        let mut copy = self.clone();
        copy.targets_mut().into_iter().map(|r| r.clone()).collect()
    }

    /// Whether the node can end the call (no `next` needed; a voicemail or callback without
    /// one thanks the caller and ends the call).
    pub fn ends_call(&self) -> bool {
        matches!(
            self,
            Node::Transfer(_) | Node::Hangup(_) | Node::Voicemail(_) | Node::Callback(_)
        )
    }

    /// Whether control never falls through to `next` (it always jumps elsewhere).
    pub fn always_jumps(&self) -> bool {
        matches!(
            self,
            Node::Route(_) | Node::Branch(_) | Node::Goto(_) | Node::Return
        ) || self.ends_call()
    }

    /// Whether a call waits here for the caller (so a loop through it is not endless).
    pub fn waits_for_caller(&self) -> bool {
        matches!(self, Node::Ask(_) | Node::Voicemail(_))
    }
}
