//! `set`: assign variables (values may use `{{other}}` variables).
//!
//! ```yaml
//! remember:
//!   set: { queue: billing, reason: "payment problem" }
//!   next: handoff
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::read::{Ctx, MapReader, fill, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub values: Vec<(String, Pos, String)>,
}

impl NodeKind for Set {
    fn enter(
        &self,
        _id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        _actions: &mut Vec<Action>,
    ) -> Walk {
        for (k, _, v) in &self.values {
            let value = fill(v, |x| call.vars.get(x).cloned());
            call.vars.insert(k.clone(), value);
        }
        Walk::Go(next)
    }

    /// The values, filled from variables.
    fn templates(&self) -> Vec<(String, Pos)> {
        (self.values.iter())
            .map(|(_, pos, value)| (value.clone(), *pos))
            .collect()
    }

    fn sets(&self) -> Vec<String> {
        self.values.iter().map(|(k, _, _)| k.clone()).collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Set> {
    let m = MapReader::new(value, "set", cx.p);
    let values = m
        .entries()
        .iter()
        .filter_map(|(k, v)| text(v, "value", cx.p).map(|(t, _)| (k.name.clone(), k.pos, t)))
        .collect();
    Some(Set { values })
}
