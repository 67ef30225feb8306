//! `goto`: jump to another node.
//!
//! ```yaml
//! again:
//!   goto: menu
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::model::Ref;
use crate::dialplan::read::{Ctx, MapReader};
use crate::dialplan::yaml::Yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goto {
    pub target: Ref,
}

impl NodeKind for Goto {
    fn enter(
        &self,
        _id: &str,
        _next: Option<String>,
        _call: &mut CallEngine,
        _actions: &mut Vec<Action>,
    ) -> Walk {
        Walk::Go(Some(self.target.name.clone()))
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        vec![&mut self.target]
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Goto> {
    Some(Goto {
        target: cx.reference(value, "goto")?,
    })
}
