//! `transfer`: hand the caller to a human, with the reason and the transcript.
//!
//! ```yaml
//! to_billing:
//!   transfer: { queue: billing, reason: "payment problem", say: connecting_you }
//!   # or { uri: "sip:agent@192.0.2.10", ... }
//!   # optional: where the call goes when no agent answers (busy, no answer, unreachable);
//!   # without it the caller hears an apology and the call ends.
//!   fallback: agents_busy
//!   # optional, 0 to 9: the caller's place in the queue's line (higher first). Without it:
//!   # 2 for a caller who sounds upset, 1 for one the bot failed, 0 otherwise.
//!   priority: 5
//!   # optional: keys a caller waiting for an agent may press, and where each leads (out of
//!   # the queue), offered after each place announcement by `options`
//!   keys: { "1": call_me_back, "2": leave_message }
//!   options: "Press 1 to be called back, or 2 to leave a message."
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::model::{Ref, Speech};
use crate::dialplan::read::{Ctx, MapReader, number, text};
use crate::dialplan::yaml::Yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Queue(String),
    Uri(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub target: Target,
    pub reason: String,
    pub say: Option<Speech>,
    pub fallback: Option<Ref>,
    pub priority: Option<u8>,
    /// Keys a waiting caller may press, and their nodes.
    pub keys: Vec<(char, Ref)>,
    pub options: Option<Speech>,
}

impl NodeKind for Transfer {
    fn enter(
        &self,
        _id: &str,
        _next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        if let Some(s) = &self.say {
            call.say(actions, &s.text, false);
        }
        let reason = if self.reason.is_empty() {
            call.record.reason.clone()
        } else {
            self.reason.clone()
        };
        if call.record.reason.is_empty() {
            call.record.reason = reason.clone();
        } else if !call.record.reason.contains(&reason) {
            call.record.reason = format!("{}; {reason}", call.record.reason);
        }
        let fallback = self.fallback.as_ref().map(|f| f.name.clone());
        call.transfer(
            self.target.clone(),
            &reason,
            fallback,
            self.priority,
            actions,
        );
        // After `transfer`, which forgets an earlier transfer's keys.
        call.transfer_keys = (self.keys.iter())
            .map(|(k, r)| (*k, r.name.clone()))
            .collect();
        call.transfer_options = self.options.as_ref().map(|s| s.text.clone());
        Walk::Wait
    }

    fn speech(&self) -> Vec<&Speech> {
        self.say.iter().chain(&self.options).collect()
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        (self.fallback.iter_mut())
            .chain(self.keys.iter_mut().map(|(_, r)| r))
            .collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Transfer> {
    let mut m = MapReader::new(value, "transfer", cx.p);
    let queue = m.get("queue").and_then(|y| text(y, "queue", cx.p));
    let uri = m.get("uri").and_then(|y| text(y, "uri", cx.p));
    let reason = m
        .get("reason")
        .and_then(|y| text(y, "reason", cx.p))
        .map(|(t, _)| t)
        .unwrap_or_default();
    let say = m.get("say").and_then(|y| cx.speech(y, "say"));
    let fallback = m.get("fallback").and_then(|y| cx.reference(y, "fallback"));
    let priority = m.get("priority").and_then(|y| {
        let n = number(y, "priority", cx.p)?;
        if n > 9 {
            cx.p.add(y.pos(), format!("priority {n} is out of range"), "0 to 9");
            return None;
        }
        Some(n as u8)
    });
    let mut keys = Vec::new();
    if let Some(y) = m.get("keys") {
        let k = MapReader::new(y, "keys", cx.p);
        for (key, node) in k.entries() {
            let mut chars = key.name.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => {
                    if let Some(r) = cx.reference(node, "a key's node") {
                        keys.push((c, r));
                    }
                }
                _ => cx.p.add(
                    key.pos,
                    format!("`{}` is not a keypad key", key.name),
                    "one of 0-9, * or #",
                ),
            }
        }
    }
    let options = m.get("options").and_then(|y| cx.speech(y, "options"));
    let pos = m.pos;
    m.finish(&[], cx.p);
    let target = match (queue, uri) {
        (Some((q, _)), None) => Target::Queue(q),
        (None, Some((u, upos))) => {
            if !(u.starts_with("sip:") || u.starts_with("sips:")) || !u.contains('@') && u.len() < 6
            {
                cx.p.add(
                    upos,
                    format!("`{u}` is not a SIP URI"),
                    "e.g. sip:agent@192.0.2.10",
                );
            }
            Target::Uri(u)
        }
        _ => {
            cx.p.add(pos, "transfer needs exactly one of `queue` or `uri`", "");
            return None;
        }
    };
    Some(Transfer {
        target,
        reason,
        say,
        fallback,
        priority,
        keys,
        options,
    })
}
