//! `answer`: read a knowledge-base answer verbatim.
//!
//! ```yaml
//! answer_faq:
//!   answer: kb              # the entry the last utterance matched, or a fixed entry id
//!   none: not_understood    # optional: when nothing matched (with `kb`)
//!   next: anything_else
//! ```

use super::NodeKind;
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
