//! `say`: speak a prompt or text, then go to `next`.
//!
//! ```yaml
//! welcome:
//!   say: greeting          # a prompt id, or the text itself
//!   barge_in: false        # optional: the caller cannot interrupt this one
//!   answers: true          # optional: this tells the caller what they called for (the turn
//!                          # is an answer, and the call counts as self-served)
//!   next: menu
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, DecisionKind};
use crate::dialplan::model::Speech;
use crate::dialplan::read::{Ctx, MapReader, boolean};
use crate::dialplan::yaml::Yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    pub speech: Speech,
    pub barge_in: bool,
    pub answers: bool,
}

impl NodeKind for Say {
    fn enter(
        &self,
        _id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        call.say(actions, &self.speech.text, self.barge_in);
        if self.answers {
            call.record.decision = DecisionKind::Answer;
        }
        Walk::Go(next)
    }

    fn speech(&self) -> Vec<&Speech> {
        vec![&self.speech]
    }
}

pub fn read(value: &Yaml, node: &mut MapReader, cx: &mut Ctx) -> Option<Say> {
    let barge_in = node
        .get("barge_in")
        .and_then(|b| boolean(b, "barge_in", cx.p))
        .unwrap_or(true);
    let answers = node
        .get("answers")
        .and_then(|b| boolean(b, "answers", cx.p))
        .unwrap_or(false);
    Some(Say {
        speech: cx.speech(value, "say")?,
        barge_in,
        answers,
    })
}
