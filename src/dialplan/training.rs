//! The trainers' loop, its sans-IO core: a phrasing the bot missed becomes a new example of an
//! intent or knowledge entry, written into the dialplan's own text (comments and layout kept),
//! and goes live only if the hotline's scripted conversations and held-out phrasings do not
//! get worse (`gate`). The registry (`registry::HotlineRegistry::edit`) runs it under its
//! reload lock; the change log (`history`) keeps who, when and what, for a one-step revert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::Hotline;
use super::error::DialplanError;
use super::history::{Change, ChangeLog, sha};
use super::registry::{HotlineRegistry, now_ms};
use super::sim::HttpFn;
use super::testing;
use super::yaml::{self, Yaml};

/// Where a reviewed phrasing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// A new example of this intent.
    Intent(String),
    /// A new question variant of this knowledge entry (by id).
    Knowledge(String),
    /// Not something this hotline handles: no file change, it leaves the queue.
    OutOfScope,
}

impl Assignment {
    /// `intent:NAME`, `kb:ID` or `out_of_scope` (the change log's and the API's spelling).
    pub fn label(&self) -> String {
        match self {
            Assignment::Intent(n) => format!("intent:{n}"),
            Assignment::Knowledge(id) => format!("kb:{id}"),
            Assignment::OutOfScope => "out_of_scope".into(),
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        match label.split_once(':') {
            Some(("intent", n)) if !n.is_empty() => Some(Assignment::Intent(n.into())),
            Some(("kb", id)) if !id.is_empty() => Some(Assignment::Knowledge(id.into())),
            None if label == "out_of_scope" => Some(Assignment::OutOfScope),
            _ => None,
        }
    }
}

/// Why a change did not go live. Every variant leaves the file and the serving version as
/// they were.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// The request itself is wrong (an empty phrase, an unknown intent).
    #[error("{0}")]
    BadRequest(String),
    /// Someone edited the file since it was loaded; applying the change would overwrite it
    /// or be judged against the wrong version.
    #[error(
        "{file} changed on disk since version {version} was loaded; nothing was written: reload it (or wait for the watcher) and try again"
    )]
    ChangedOnDisk { file: String, version: u64 },
    /// The change cannot apply to the file as it is now (a revert after later changes).
    #[error("{0}")]
    Conflict(String),
    /// The edited file does not pass `voxnav check`.
    #[error("the edited dialplan is refused:\n{0}")]
    Refused(DialplanError),
    /// The test gate: which conversations or held-out phrasings got worse.
    #[error("the change would make the hotline worse:\n  {}", .0.join("\n  "))]
    Worse(Vec<String>),
    #[error("{0}")]
    Io(String),
}

/// The longest phrasing taken as an example (a transcript longer than this is not one request).
pub const MAX_EXAMPLE_CHARS: usize = 200;

/// The phrasing as it will be written: trimmed, inner whitespace collapsed; refused if empty,
/// too long, or holding control characters.
pub fn clean_example(text: &str) -> Result<String, TrainError> {
    let cleaned = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.is_empty() {
        return Err(TrainError::BadRequest("the phrasing is empty".into()));
    }
    if cleaned.chars().count() > MAX_EXAMPLE_CHARS {
        return Err(TrainError::BadRequest(format!(
            "the phrasing is longer than {MAX_EXAMPLE_CHARS} characters"
        )));
    }
    if cleaned.chars().any(char::is_control) {
        return Err(TrainError::BadRequest(
            "the phrasing holds control characters".into(),
        ));
    }
    Ok(cleaned)
}

/// How a phrasing is written in YAML: plain when that reads back as the same text, else
/// double-quoted with `\` and `"` escaped.
fn yaml_scalar(text: &str) -> String {
    let plain = text.chars().next().is_some_and(char::is_alphanumeric)
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || " ',.?!-".contains(c));
    if plain {
        return text.to_string();
    }
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Byte offset of a 1-based line and (character) column.
fn offset_of(source: &str, pos: yaml::Pos) -> Option<usize> {
    let line_start = if pos.line <= 1 {
        0
    } else {
        source
            .match_indices('\n')
            .nth(pos.line - 2)
            .map(|(i, _)| i + 1)?
    };
    let line = &source[line_start..];
    let col = line
        .char_indices()
        .nth(pos.col - 1)
        .map_or(line.len(), |(i, _)| i);
    Some(line_start + col)
}

fn entry<'a>(map: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    match map {
        Yaml::Map { entries, .. } => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

/// The list a new example of `assignment` goes into: an intent's `examples`, or a knowledge
/// entry's `questions`.
fn target_list<'a>(tree: &'a Yaml, assignment: &Assignment) -> Result<&'a Yaml, TrainError> {
    let list = match assignment {
        Assignment::Intent(name) => entry(tree, "intents")
            .and_then(|i| entry(i, name))
            .and_then(|i| entry(i, "examples")),
        Assignment::Knowledge(id) => match entry(tree, "knowledge") {
            Some(Yaml::Seq { items, .. }) => items
                .iter()
                .find(|e| entry(e, "id").and_then(Yaml::as_str) == Some(id.as_str()))
                .and_then(|e| entry(e, "questions")),
            _ => None,
        },
        Assignment::OutOfScope => None,
    };
    match list {
        Some(l @ Yaml::Seq { .. }) => Ok(l),
        _ => Err(TrainError::BadRequest(match assignment {
            Assignment::Intent(n) => format!("this file has no intent `{n}` with an examples list"),
            Assignment::Knowledge(id) => {
                format!("this file has no knowledge entry `{id}` with a questions list")
            }
            Assignment::OutOfScope => "out of scope changes no file".into(),
        })),
    }
}

/// The examples (or questions) `assignment` has in a loaded plan.
fn phrasings(plan: &super::Dialplan, assignment: &Assignment) -> Option<Vec<String>> {
    match assignment {
        Assignment::Intent(n) => plan
            .intents
            .iter()
            .find(|i| &i.name == n)
            .map(|i| i.examples.clone()),
        Assignment::Knowledge(id) => plan
            .knowledge
            .iter()
            .find(|k| &k.id == id)
            .map(|k| k.questions.clone()),
        Assignment::OutOfScope => None,
    }
}

/// `source` with `example` appended to the list `assignment` names, in the list's own style
/// (a `- item` line at the items' indentation, or `, item` before a flow list's `]`). The
/// result is read back: it must load and differ from `source` by exactly that one example,
/// or the edit is refused (a layout this cannot edit safely is never half-edited).
pub fn add_example(
    file: &str,
    source: &str,
    assignment: &Assignment,
    example: &str,
) -> Result<String, TrainError> {
    let example = clean_example(example)?;
    let before = super::load_str(file, source).map_err(TrainError::Refused)?;
    let existing = phrasings(&before, assignment).ok_or_else(|| {
        TrainError::BadRequest(format!("unknown target `{}`", assignment.label()))
    })?;
    if existing.iter().any(|e| e.eq_ignore_ascii_case(&example)) {
        return Err(TrainError::Conflict(format!(
            "`{example}` is already an example of {}",
            assignment.label()
        )));
    }
    let tree = yaml::parse(source).map_err(|e| TrainError::BadRequest(e.message))?;
    let Yaml::Seq { items, pos } = target_list(&tree, assignment)? else {
        unreachable!("target_list returns a list")
    };
    let written = yaml_scalar(&example);
    let unsafe_layout = || {
        TrainError::Conflict(format!(
            "{file}: the list of {} is laid out in a way this cannot edit safely; add the example by hand",
            assignment.label()
        ))
    };
    let list_at = offset_of(source, *pos).ok_or_else(unsafe_layout)?;
    let edited = if source[list_at..].starts_with('[') {
        // A flow list: insert before its closing bracket (skipping quoted text on the way).
        let from = items
            .last()
            .and_then(|i| offset_of(source, i.pos()))
            .unwrap_or(list_at + 1);
        let close = closing_bracket(&source[from..]).ok_or_else(unsafe_layout)? + from;
        let sep = if items.is_empty() { "" } else { ", " };
        format!("{}{sep}{written}{}", &source[..close], &source[close..])
    } else {
        // A block list: a new `- item` line after the last item's line, at its indentation.
        let last = items.last().ok_or_else(unsafe_layout)?;
        let at = offset_of(source, last.pos()).ok_or_else(unsafe_layout)?;
        let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[at..].find('\n').map_or(source.len(), |i| at + i);
        let line = &source[line_start..line_end];
        let indent = line.len() - line.trim_start().len();
        if !line.trim_start().starts_with("- ") {
            return Err(unsafe_layout());
        }
        let newline = if line_end == source.len() { "\n" } else { "" };
        format!(
            "{}{newline}\n{}- {written}{}",
            &source[..line_end],
            " ".repeat(indent),
            &source[line_end..]
        )
    };
    let after = super::load_str(file, &edited).map_err(|_| unsafe_layout())?;
    let mut expected = existing;
    expected.push(example);
    if phrasings(&after, assignment) != Some(expected) {
        return Err(unsafe_layout());
    }
    Ok(edited)
}

/// The byte offset of the `]` that closes the flow list `text` is inside.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' => depth += 1,
                ']' if depth == 0 => return Some(i),
                ']' => depth -= 1,
                _ => {}
            },
        }
    }
    None
}

/// The files the gate reads beside a dialplan `dir/NAME.yaml`: `NAME.tests.yaml` and
/// `NAME.heldout.tsv` (each optional).
pub fn gate_files(dialplan: &Path) -> (PathBuf, PathBuf) {
    let stem = dialplan
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    (
        dialplan.with_file_name(format!("{stem}.tests.yaml")),
        dialplan.with_file_name(format!("{stem}.heldout.tsv")),
    )
}

/// What the gate measured on a change it let through.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateReport {
    /// Scripted conversations passing after the change, of how many.
    pub tests_passed: usize,
    pub tests_total: usize,
    /// Held-out phrasings right before and after, of how many (None: no held-out file).
    pub heldout_before: Option<usize>,
    pub heldout_after: Option<usize>,
    pub heldout_total: usize,
    /// What the hotline's first question now makes of the trained phrasing.
    pub now_understood_as: String,
}

/// What the gate compares.
pub struct Gate<'a> {
    pub tests: Option<testing::TestFile>,
    pub heldout: Vec<(String, String)>,
    pub vars: BTreeMap<String, String>,
    pub http: HttpFn<'a>,
}

impl<'a> Gate<'a> {
    /// Reads the gate files beside `dialplan` (absent files gate nothing; a broken test file
    /// refuses every change, since nothing could be judged).
    pub fn beside(
        dialplan: &Path,
        vars: BTreeMap<String, String>,
        http: HttpFn<'a>,
    ) -> Result<Self, TrainError> {
        let (tests, heldout) = gate_files(dialplan);
        let tests = if tests.exists() {
            Some(testing::read(&tests).map_err(TrainError::Io)?)
        } else {
            None
        };
        let heldout = if heldout.exists() {
            testing::read_heldout(&heldout).map_err(|e| TrainError::Io(e.to_string()))?
        } else {
            Vec::new()
        };
        Ok(Self {
            tests,
            heldout,
            vars,
            http,
        })
    }

    /// Lets `after` through if no conversation that passed on `before` fails on it, and it
    /// gets no fewer held-out phrasings right; otherwise says which ones broke.
    pub fn judge(
        &self,
        before: &Arc<Hotline>,
        after: &Arc<Hotline>,
        trained: &str,
    ) -> Result<GateReport, TrainError> {
        let mut worse = Vec::new();
        let (mut tests_passed, mut tests_total) = (0, 0);
        if let Some(tests) = &self.tests {
            let old = testing::run(tests, before, &self.vars, self.http);
            let new = testing::run(tests, after, &self.vars, self.http);
            tests_passed = new.passed;
            tests_total = new.passed + new.failed.len();
            for failure in &new.failed {
                if !old.failed.contains(failure) {
                    worse.push(format!("conversation broke: {failure}"));
                }
            }
        }
        let right = |h: &Arc<Hotline>| -> Vec<(bool, String)> {
            self.heldout
                .iter()
                .map(|(phrase, want)| {
                    let got = testing::first_turn_decision(h, phrase);
                    (&got == want, got)
                })
                .collect()
        };
        let (mut heldout_before, mut heldout_after) = (None, None);
        if !self.heldout.is_empty() {
            let old = right(before);
            let new = right(after);
            let count = |v: &[(bool, String)]| v.iter().filter(|(ok, _)| *ok).count();
            heldout_before = Some(count(&old));
            heldout_after = Some(count(&new));
            if count(&new) < count(&old) {
                for (((phrase, want), (was_ok, _)), (now_ok, got)) in
                    self.heldout.iter().zip(&old).zip(&new)
                {
                    if *was_ok && !now_ok {
                        worse.push(format!(
                            "held-out phrasing \"{phrase}\" was {want}, now {got}"
                        ));
                    }
                }
            }
        }
        if !worse.is_empty() {
            return Err(TrainError::Worse(worse));
        }
        Ok(GateReport {
            tests_passed,
            tests_total,
            heldout_before,
            heldout_after,
            heldout_total: self.heldout.len(),
            now_understood_as: testing::first_turn_decision(after, trained),
        })
    }
}

/// The longest trainer name kept.
const MAX_TRAINER_CHARS: usize = 40;

/// The trainer's name as recorded; refused if empty or odd (it is shown in the dashboard and
/// kept in the audit trail).
pub fn clean_trainer(name: &str) -> Result<String, TrainError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_TRAINER_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " .-_@".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(TrainError::BadRequest(format!(
            "say who you are: a trainer name of 1 to {MAX_TRAINER_CHARS} letters, digits, spaces or .-_@"
        )))
    }
}

/// What an accepted review did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Accepted {
    pub change: Change,
    /// What the gate measured (None for out of scope: nothing to judge).
    pub gate: Option<GateReport>,
}

/// A trainer's decision on a reviewed phrasing: a new example through the registry's checked,
/// gated edit, or out of scope (logged only). Either way it is in the change log.
pub fn review(
    registry: &HotlineRegistry,
    gate: &Gate<'_>,
    text: &str,
    assignment: Assignment,
    trainer: &str,
) -> Result<Accepted, TrainError> {
    let trainer = clean_trainer(trainer)?;
    let text = clean_example(text)?;
    let file = registry.file();
    let log = ChangeLog::of(&file);
    let entry = |version, before: &str, after: &str| Change {
        id: 0,
        at_ms: now_ms(),
        trainer: trainer.clone(),
        action: match assignment {
            Assignment::OutOfScope => "out_of_scope".into(),
            _ => "example".into(),
        },
        text: text.clone(),
        target: assignment.label(),
        version,
        reverts: None,
        before_sha: sha(before),
        after_sha: sha(after),
        before: if before == after {
            String::new()
        } else {
            before.to_string()
        },
    };
    let io = |e: std::io::Error| TrainError::Io(format!("{}: {e}", log.path().display()));
    if assignment == Assignment::OutOfScope {
        let current = std::fs::read_to_string(&file).unwrap_or_default();
        let change = log.append(entry(None, &current, &current)).map_err(io)?;
        return Ok(Accepted { change, gate: None });
    }
    let shown = file.display().to_string();
    registry.edit(
        |source| add_example(&shown, source, &assignment, &text),
        |before, after| gate.judge(before, after, &text),
        |edited| {
            let change = log
                .append(entry(Some(edited.version), edited.before, edited.after))
                .map_err(io)?;
            Ok(Accepted {
                change,
                gate: Some(edited.judged),
            })
        },
    )
}

/// Undoes change `id`: the file goes back to its text before that change, checked like an
/// upload (not gated: it is a version that was live). Only while the file is still as that
/// change left it; after later changes, those are reverted first.
pub fn revert(registry: &HotlineRegistry, id: u64, trainer: &str) -> Result<Change, TrainError> {
    let trainer = clean_trainer(trainer)?;
    let file = registry.file();
    let log = ChangeLog::of(&file);
    let changes = log.list();
    let target = changes
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| TrainError::BadRequest(format!("no change #{id}")))?
        .clone();
    if target.action == "revert" || target.before.is_empty() {
        return Err(TrainError::BadRequest(format!(
            "change #{id} changed no file; nothing to revert"
        )));
    }
    if changes.iter().any(|c| c.reverts == Some(id)) {
        return Err(TrainError::Conflict(format!(
            "change #{id} is already reverted"
        )));
    }
    let io = |e: std::io::Error| TrainError::Io(format!("{}: {e}", log.path().display()));
    registry.edit(
        |source| {
            if sha(source) != target.after_sha {
                let later: Vec<String> = changes
                    .iter()
                    .filter(|c| c.id > id && c.version.is_some())
                    .map(|c| format!("#{} by {}", c.id, c.trainer))
                    .collect();
                return Err(TrainError::Conflict(if later.is_empty() {
                    format!("the file is no longer as change #{id} left it; nothing was written")
                } else {
                    format!(
                        "later changes ({}) are live; revert them first; nothing was written",
                        later.join(", ")
                    )
                }));
            }
            Ok(target.before.clone())
        },
        |_, _| Ok(()),
        |edited| {
            log.append(Change {
                id: 0,
                at_ms: now_ms(),
                trainer: trainer.clone(),
                action: "revert".into(),
                text: target.text.clone(),
                target: target.target.clone(),
                version: Some(edited.version),
                reverts: Some(id),
                before_sha: sha(edited.before),
                after_sha: sha(edited.after),
                before: edited.before.to_string(),
            })
            .map_err(io)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "name: t\n# the intents\nintents:\n  hello:\n    examples:\n      - hello there   # a comment stays\n      - hey you\n      - hi\n    keywords: [hey]\n  bye:\n    examples: [goodbye, \"see you, later\", bye now]\nknowledge:\n  - id: hours\n    questions:\n      - when are you open\n    answer: \"Nine to five.\"\nhandlers: { no_input: end, no_match: end }\nstart: ask\nnodes:\n  ask:\n    ask: { prompt: \"Say something.\" }\n    next: end\n  end: { hangup: \"Bye.\" }\n";

    fn examples(source: &str, intent: &str) -> Vec<String> {
        let plan = crate::dialplan::load_str("t.yaml", source).unwrap();
        plan.intents
            .iter()
            .find(|i| i.name == intent)
            .unwrap()
            .examples
            .clone()
    }

    #[test]
    fn an_example_is_added_in_the_lists_own_style_and_nothing_else_changes() {
        let a = Assignment::Intent("hello".into());
        let edited = add_example("t.yaml", PLAN, &a, "  good   morning ").unwrap();
        assert_eq!(
            edited,
            PLAN.replace("      - hi\n", "      - hi\n      - good morning\n")
        );
        assert!(edited.contains("# a comment stays"));

        let b = Assignment::Intent("bye".into());
        let edited = add_example("t.yaml", PLAN, &b, "ciao: for now").unwrap();
        assert!(
            edited.contains("[goodbye, \"see you, later\", bye now, \"ciao: for now\"]"),
            "{edited}"
        );
        assert_eq!(
            examples(&edited, "bye"),
            ["goodbye", "see you, later", "bye now", "ciao: for now"]
        );

        let k = Assignment::Knowledge("hours".into());
        let edited = add_example("t.yaml", PLAN, &k, "what time do you \"open\"?").unwrap();
        assert!(
            edited.contains("      - \"what time do you \\\"open\\\"?\"\n    answer"),
            "{edited}"
        );
        let mandarin = add_example("t.yaml", PLAN, &a, "你好").unwrap();
        assert_eq!(examples(&mandarin, "hello").last().unwrap(), "你好");
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let a = Assignment::Intent("hello".into());
        let err = |r: Result<String, TrainError>| r.unwrap_err().to_string();
        assert!(err(add_example("t.yaml", PLAN, &a, "   ")).contains("empty"));
        assert!(err(add_example("t.yaml", PLAN, &a, &"x".repeat(201))).contains("longer"));
        assert!(err(add_example("t.yaml", PLAN, &a, "a\u{7}b")).contains("control"));
        assert!(err(add_example("t.yaml", PLAN, &a, "Hello There")).contains("already"));
        let nowhere = Assignment::Intent("nope".into());
        assert!(err(add_example("t.yaml", PLAN, &nowhere, "x")).contains("unknown target"));
        assert_eq!(
            Assignment::parse("kb:hours"),
            Some(Assignment::Knowledge("hours".into()))
        );
        assert_eq!(
            Assignment::parse("out_of_scope"),
            Some(Assignment::OutOfScope)
        );
        assert_eq!(Assignment::parse("intent:"), None);
    }

    #[test]
    fn a_layout_that_cannot_be_edited_safely_is_refused_untouched() {
        // The last example is a folded block scalar: a line after it would join it.
        let folded = PLAN.replace("      - hi\n", "      - >\n        hi\n        there\n");
        let a = Assignment::Intent("hello".into());
        let e = add_example("t.yaml", &folded, &a, "good morning").unwrap_err();
        assert!(matches!(e, TrainError::Conflict(_)), "{e}");
    }
}
