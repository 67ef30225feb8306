//! `callback`: the caller leaves their number to be called back by an agent of a queue (the
//! other overflow of a transfer's `fallback`, besides `voicemail`). The request keeps the
//! caller's place in the queue's line; when it comes first and an agent is free, voxnav rings
//! the agent, then calls the number back (`call::callback`).
//!
//! ```yaml
//! call_me_back:
//!   callback: { queue: general, number: "{{caller_number}}" }   # number: the default
//!   next: anything_else   # optional: without it, the confirmation and goodbye
//! ```
//!
//! The number may come from an `ask` with a `phone` slot (`number: "{{phone}}"`), which reads
//! it back for a yes first. A number that cannot be called (a hidden caller id) is not
//! queued: the caller hears the no-agent apology instead.

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, DecisionKind, Waiting};
use crate::dialplan::phrases::Phrase;
use crate::dialplan::read::{Ctx, MapReader, fill, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub queue: String,
    /// A template (`{{caller_number}}` by default).
    pub number: String,
    pub pos: Pos,
}

impl NodeKind for Callback {
    fn enter(
        &self,
        _id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        let number: String = fill(&self.number, |v| call.vars.get(v).cloned())
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let plan = call.hotline().plan.clone();
        if !crate::call::callback::callable(&number) {
            call.record.reason = format!("callback: `{number}` cannot be called back");
            call.say(actions, Phrase::NoAgentGoodbye.text(&plan), false);
            actions.push(Action::Hangup {
                reason: call.record.reason.clone(),
            });
            call.record.decision = DecisionKind::End;
            call.waiting = Waiting::Ended;
            return Walk::Wait;
        }
        // Digits one by one, as a number is read back.
        let spoken: Vec<String> = number.chars().map(String::from).collect();
        let confirm = Phrase::CallbackConfirm
            .text(&plan)
            .replace("{{number}}", &spoken.join(" "));
        call.say(actions, &confirm, false);
        call.callback(&self.queue, &number, actions);
        match next {
            Some(n) => Walk::Go(Some(n)),
            None => {
                actions.push(Action::Hangup {
                    reason: call.record.reason.clone(),
                });
                call.record.decision = DecisionKind::End;
                call.waiting = Waiting::Ended;
                Walk::Wait
            }
        }
    }

    fn templates(&self) -> Vec<(String, Pos)> {
        vec![(self.number.clone(), self.pos)]
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Callback> {
    let mut m = MapReader::new(value, "callback", cx.p);
    let queue = m.get("queue").and_then(|y| text(y, "queue", cx.p));
    let number = m.get("number").and_then(|y| text(y, "number", cx.p));
    let pos = m.pos;
    m.finish(&[], cx.p);
    let Some((queue, _)) = queue else {
        cx.p.add(pos, "callback needs the `queue` whose agent calls back", "");
        return None;
    };
    let (number, pos) = number.unwrap_or(("{{caller_number}}".into(), pos));
    Some(Callback { queue, number, pos })
}
