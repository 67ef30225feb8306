//! `hangup`: say goodbye (optional) and end the call.
//!
//! ```yaml
//! bye:
//!   hangup: goodbye_prompt
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, DecisionKind, Waiting};
use crate::dialplan::model::Speech;
use crate::dialplan::read::{Ctx, MapReader};
use crate::dialplan::yaml::Yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hangup {
    pub say: Option<Speech>,
}

impl NodeKind for Hangup {
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
        actions.push(Action::Hangup {
            reason: call.record.reason.clone(),
        });
        call.record.decision = DecisionKind::End;
        call.waiting = Waiting::Ended;
        Walk::Wait
    }

    fn speech(&self) -> Vec<&Speech> {
        self.say.iter().collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Hangup> {
    let say = if value.is_null() || value.as_str() == Some("true") {
        None
    } else {
        cx.speech(value, "hangup")
    };
    Some(Hangup { say })
}
