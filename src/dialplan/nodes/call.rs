//! `call`: run a reusable sub-flow (`flows:`), then continue at `next` when it `return`s.
//!
//! ```yaml
//! get_number:
//!   call: collect_order_number
//!   next: lookup
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::read::{Ctx, MapReader, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub flow: String,
    pub pos: Pos,
}

/// Leads only to its flow (and `next`), says nothing, sets nothing.
impl NodeKind for Call {
    fn enter(
        &self,
        _id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        _actions: &mut Vec<Action>,
    ) -> Walk {
        if let Some(n) = next {
            call.returns.push(n);
        }
        Walk::Go(call.hotline.plan.flows.get(&self.flow).cloned())
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Call> {
    let (flow, pos) = text(value, "call", cx.p)?;
    Some(Call { flow, pos })
}
