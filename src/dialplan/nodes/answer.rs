//! `answer`: read a knowledge-base answer verbatim.
//!
//! ```yaml
//! answer_faq:
//!   answer: kb              # the entry the last utterance matched, or a fixed entry id
//!   none: not_understood    # optional: when nothing matched (with `kb`)
//!   next: anything_else
//! ```

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, DecisionKind};
use crate::dialplan::model::Ref;
use crate::dialplan::read::{Ctx, MapReader, text};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// None: the entry matched by the last utterance; Some: a fixed entry.
    pub entry: Option<(String, Pos)>,
    pub none: Option<Ref>,
}

impl NodeKind for Answer {
    fn enter(
        &self,
        _id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        let entry_id = self
            .entry
            .as_ref()
            .map(|(e, _)| e.clone())
            .or_else(|| call.vars.get("kb_id").cloned().filter(|k| !k.is_empty()));
        let hotline = call.hotline.clone();
        match entry_id.and_then(|e| hotline.kb.entry(&e).cloned()) {
            Some(entry) => {
                call.say(actions, &entry.answer, true);
                call.vars.insert("kb_answer".into(), entry.answer.clone());
                call.record.kb = Some(entry.id.clone());
                call.record.decision = DecisionKind::Answer;
                Walk::Go(next)
            }
            None => Walk::Go(self.none.as_ref().map(|r| r.name.clone()).or(next)),
        }
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        self.none.iter_mut().collect()
    }
}

pub fn read(value: &Yaml, node: &mut MapReader, cx: &mut Ctx) -> Option<Answer> {
    let (id, pos) = text(value, "answer", cx.p)?;
    let none = node.get("none").and_then(|y| cx.reference(y, "none"));
    Some(Answer {
        entry: (id != "kb").then_some((id, pos)),
        none,
    })
}
