//! `branch`: go where the first true condition says.
//!
//! ```yaml
//! by_status:
//!   branch:
//!     - if: "status == shipped"      # ==, != (text), <, >, <=, >= (numbers); `var` alone: set and not empty
//!       then: say_shipped
//!     - if: "status == processing"
//!       then: say_processing
//!   else: say_unknown
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine};
use crate::dialplan::model::Ref;
use crate::dialplan::read::{Ctx, MapReader, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub variable: String,
    /// None: "is set and not empty".
    pub op: Option<(String, String)>,
    pub pos: Pos,
}

impl Condition {
    pub fn parse(text: &str, pos: Pos) -> Result<Self, String> {
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if let Some((l, r)) = text.split_once(op) {
                let (l, r) = (l.trim(), r.trim().trim_matches(['"', '\'']));
                if l.is_empty() {
                    return Err(format!("`{text}`: no variable before `{op}`"));
                }
                return Ok(Self {
                    variable: l.to_string(),
                    op: Some((op.to_string(), r.to_string())),
                    pos,
                });
            }
        }
        let v = text.trim();
        if v.is_empty() || v.contains(' ') {
            return Err(format!("`{text}` is not a condition"));
        }
        Ok(Self {
            variable: v.to_string(),
            op: None,
            pos,
        })
    }

    /// Evaluates against the variable's value.
    pub fn holds(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match &self.op {
            None => !v.is_empty(),
            Some((op, want)) => match op.as_str() {
                "==" => v.eq_ignore_ascii_case(want),
                "!=" => !v.eq_ignore_ascii_case(want),
                _ => match (v.parse::<f64>(), want.parse::<f64>()) {
                    (Ok(a), Ok(b)) => match op.as_str() {
                        "<" => a < b,
                        ">" => a > b,
                        "<=" => a <= b,
                        _ => a >= b,
                    },
                    _ => false,
                },
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    pub cases: Vec<(Condition, Ref)>,
    pub otherwise: Ref,
}

impl NodeKind for Branch {
    fn enter(
        &self,
        _id: &str,
        _next: Option<String>,
        call: &mut CallEngine,
        _actions: &mut Vec<Action>,
    ) -> Walk {
        let taken = self
            .cases
            .iter()
            .find(|(c, _)| c.holds(call.vars.get(&c.variable).map(String::as_str)))
            .map_or(&self.otherwise, |(_, t)| t);
        Walk::Go(Some(taken.name.clone()))
    }

    /// The variables the conditions read, as `{{name}}` templates.
    fn templates(&self) -> Vec<(String, Pos)> {
        (self.cases.iter())
            .map(|(c, _)| (format!("{{{{{}}}}}", c.variable), c.pos))
            .collect()
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        (self.cases.iter_mut().map(|(_, r)| r))
            .chain([&mut self.otherwise])
            .collect()
    }
}

pub fn read(value: &Yaml, node: &mut MapReader, cx: &mut Ctx) -> Option<Branch> {
    let mut cases = Vec::new();
    match value {
        Yaml::Seq { items, .. } => {
            for item in items {
                let mut m = MapReader::new(item, "branch case", cx.p);
                let cond = m.require("if", cx.p).and_then(|y| text(y, "if", cx.p));
                let target = m
                    .require("then", cx.p)
                    .and_then(|y| cx.reference(y, "then"));
                m.finish(&[], cx.p);
                if let (Some((t, pos)), Some(target)) = (cond, target) {
                    match Condition::parse(&t, pos) {
                        Ok(c) => cases.push((c, target)),
                        Err(e) => cx.p.add(pos, e, "e.g. `status == shipped`"),
                    }
                }
            }
        }
        other => cx.p.add(
            other.pos(),
            "branch takes a list of `- if: ... then: ...`",
            "",
        ),
    }
    let otherwise = node.get("else").and_then(|y| cx.reference(y, "else"));
    if otherwise.is_none() {
        cx.p.add(
            node.pos,
            "branch needs `else: <node>`",
            "where to go when no condition holds",
        );
    }
    Some(Branch {
        cases,
        otherwise: otherwise?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let p = Pos::default();
        assert!(
            Condition::parse("status == shipped", p)
                .unwrap()
                .holds(Some("Shipped"))
        );
        assert!(Condition::parse("count >= 3", p).unwrap().holds(Some("4")));
        assert!(!Condition::parse("count < 3", p).unwrap().holds(Some("x")));
        assert!(Condition::parse("eta", p).unwrap().holds(Some("tomorrow")));
        assert!(!Condition::parse("eta", p).unwrap().holds(None));
        assert!(Condition::parse("== x", p).is_err());
    }
}
