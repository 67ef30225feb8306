//! `route`: branch on what the last `ask` understood.
//!
//! ```yaml
//! route_menu:
//!   route:
//!     order_status: get_order     # intent -> node
//!     return_refund: refund_info
//!     kb: answer_faq              # the knowledge base had the answer
//!     default: not_understood     # anything else
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::model::Ref;
use crate::dialplan::read::{Ctx, MapReader};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// (intent, its position, target).
    pub cases: Vec<(String, Pos, Ref)>,
    pub kb: Option<Ref>,
    pub default: Ref,
}

impl NodeKind for Route {
    fn enter(
        &self,
        _id: &str,
        _next: Option<String>,
        call: &mut CallEngine,
        _actions: &mut Vec<Action>,
    ) -> Walk {
        let intent = call.vars.get("intent").cloned().unwrap_or_default();
        let kb = call.vars.get("kb_id").is_some_and(|k| !k.is_empty());
        let target = if kb && self.kb.is_some() {
            self.kb.clone()
        } else {
            self.cases
                .iter()
                .find(|(i, _, _)| *i == intent)
                .map(|(_, _, t)| t.clone())
        };
        Walk::Go(Some(target.unwrap_or_else(|| self.default.clone()).name))
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        (self.cases.iter_mut().map(|(_, _, r)| r))
            .chain(self.kb.iter_mut())
            .chain([&mut self.default])
            .collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Route> {
    let m = MapReader::new(value, "route", cx.p);
    let (mut cases, mut kb, mut default) = (Vec::new(), None, None);
    for (k, v) in m.entries() {
        let Some(target) = cx.reference(v, "route target") else {
            continue;
        };
        match k.name.as_str() {
            "kb" => kb = Some(target),
            "default" => default = Some(target),
            intent => cases.push((intent.to_string(), k.pos, target)),
        }
    }
    if default.is_none() {
        cx.p.add(
            m.pos,
            "route needs a `default` branch",
            "add `default: <node>` for anything not listed (out of scope, low confidence)",
        );
    }
    Some(Route {
        cases,
        kb,
        default: default?,
    })
}
