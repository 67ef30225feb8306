//! `goto`: jump to another node.
//!
//! ```yaml
//! again:
//!   goto: menu
//! ```

use super::NodeKind;
use crate::dialplan::model::Ref;
use crate::dialplan::read::{Ctx, MapReader};
use crate::dialplan::yaml::Yaml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goto {
    pub target: Ref,
}

impl NodeKind for Goto {
    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        vec![&mut self.target]
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Goto> {
    Some(Goto {
        target: cx.reference(value, "goto")?,
    })
}
