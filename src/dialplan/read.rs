//! Typed reading of the position-keeping YAML tree, recording problems instead of stopping at
//! the first, so `voxnav check` reports everything wrong in one go.

use super::error::{Problems, did_you_mean};
use super::yaml::{Pos, Yaml};

/// A YAML file's text for a loader (`shown` names it in errors), or the problem of reading
/// it at 1:1.
pub fn read_source(path: &std::path::Path) -> Result<(String, String), super::DialplanError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => Ok((shown, source)),
        Err(e) => {
            let mut p = Problems::new(&shown);
            p.add(Pos { line: 1, col: 1 }, format!("cannot read: {e}"), "");
            Err(super::DialplanError { problems: p.list })
        }
    }
}

/// The YAML tree of a loader's text, or its syntax problem (with where to look) in `p`.
pub fn parse_source(source: &str, p: &mut Problems) -> Option<Yaml> {
    match super::yaml::parse(source) {
        Ok(tree) => Some(tree),
        Err(e) => {
            p.add(
                e.pos,
                format!("YAML: {}", e.message),
                "check the indentation and quoting around here",
            );
            None
        }
    }
}

/// A mapping being read: remembers which keys were used so unknown ones can be reported.
pub struct MapReader<'a> {
    pub pos: Pos,
    entries: &'a [(super::yaml::Key, Yaml)],
    used: Vec<&'static str>,
    what: &'static str,
}

impl<'a> MapReader<'a> {
    /// Reads `y` as a mapping (a problem and an empty reader otherwise).
    pub fn new(y: &'a Yaml, what: &'static str, p: &mut Problems) -> Self {
        match y {
            Yaml::Map { entries, pos } => Self {
                pos: *pos,
                entries,
                used: Vec::new(),
                what,
            },
            other => {
                p.add(
                    other.pos(),
                    format!(
                        "{what} must be a mapping (key: value lines), found {}",
                        other.kind()
                    ),
                    "",
                );
                Self {
                    pos: other.pos(),
                    entries: &[],
                    used: Vec::new(),
                    what,
                }
            }
        }
    }

    pub fn get(&mut self, key: &'static str) -> Option<&'a Yaml> {
        self.used.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// A key that must be there.
    pub fn require(&mut self, key: &'static str, p: &mut Problems) -> Option<&'a Yaml> {
        let v = self.get(key);
        if v.is_none() {
            p.add(self.pos, format!("{} needs `{key}`", self.what), "");
        }
        v
    }

    /// All entries (for maps whose keys are names: intents, prompts, nodes).
    pub fn entries(&self) -> &'a [(super::yaml::Key, Yaml)] {
        self.entries
    }

    /// Reports keys that were never read, with the closest known key.
    pub fn finish(self, known_extra: &[&'static str], p: &mut Problems) {
        for (k, _) in self.entries {
            if !self.used.contains(&k.name.as_str()) && !known_extra.contains(&k.name.as_str()) {
                let known: Vec<&str> = self.used.iter().chain(known_extra).copied().collect();
                p.add(
                    k.pos,
                    format!("unknown key `{}` in {}", k.name, self.what),
                    did_you_mean(&k.name, known.iter().copied()),
                );
            }
        }
    }
}

/// A scalar as text.
pub fn text(y: &Yaml, what: &str, p: &mut Problems) -> Option<(String, Pos)> {
    match y {
        Yaml::Scalar { text, pos, .. } if !y.is_null() => Some((text.clone(), *pos)),
        other => {
            p.add(
                other.pos(),
                format!("{what} must be text, found {}", other.kind()),
                "",
            );
            None
        }
    }
}

/// A list of texts (a single text is accepted as a list of one).
pub fn texts(y: &Yaml, what: &str, p: &mut Problems) -> Vec<(String, Pos)> {
    match y {
        Yaml::Seq { items, .. } => items.iter().filter_map(|i| text(i, what, p)).collect(),
        other => text(other, what, p).into_iter().collect(),
    }
}

pub fn number(y: &Yaml, what: &str, p: &mut Problems) -> Option<u64> {
    let (t, pos) = text(y, what, p)?;
    match t.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            p.add(
                pos,
                format!("{what} must be a whole number, found `{t}`"),
                "",
            );
            None
        }
    }
}

pub fn fraction(y: &Yaml, what: &str, p: &mut Problems) -> Option<f32> {
    let (t, pos) = text(y, what, p)?;
    match t.parse::<f32>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Some(n),
        _ => {
            p.add(
                pos,
                format!("{what} must be a number from 0 to 1, found `{t}`"),
                "",
            );
            None
        }
    }
}

pub fn boolean(y: &Yaml, what: &str, p: &mut Problems) -> Option<bool> {
    let (t, pos) = text(y, what, p)?;
    match t.as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => {
            p.add(
                pos,
                format!("{what} must be true or false, found `{t}`"),
                "",
            );
            None
        }
    }
}

/// Names as YAML keys or references: letters, digits, `_`, `-`, `.`.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The `{{variable}}` names used in a text.
pub fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        out.push(rest[start + 2..start + end].trim().to_string());
        rest = &rest[start + end + 2..];
    }
    out
}

/// Fills `{{variable}}` from `lookup` (unknown ones become empty).
pub fn fill(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(rest[start + 2..start + end].trim()).unwrap_or_default());
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

use super::model::{Ref, Speech};
use std::collections::BTreeMap;

/// What node readers need: the problem list and the prompts (to resolve prompt ids).
pub struct Ctx<'a> {
    pub p: &'a mut Problems,
    pub prompts: &'a BTreeMap<String, String>,
}

impl Ctx<'_> {
    /// A prompt id (resolved to its text) or inline text. A single identifier that is not a
    /// prompt is almost always a typo, so it is an error rather than something to speak.
    pub fn speech(&mut self, y: &Yaml, what: &str) -> Option<Speech> {
        let (t, pos) = text(y, what, self.p)?;
        if let Some(prompt) = self.prompts.get(&t) {
            return Some(Speech {
                text: prompt.clone(),
                pos,
            });
        }
        if is_identifier(&t) && t.contains('_') {
            self.p.add(
                pos,
                format!("unknown prompt `{t}`"),
                did_you_mean(&t, self.prompts.keys().map(String::as_str)),
            );
            return None;
        }
        Some(Speech { text: t, pos })
    }

    pub fn speeches(&mut self, y: &Yaml, what: &str) -> Vec<Speech> {
        match y {
            Yaml::Seq { items, .. } => items.iter().filter_map(|i| self.speech(i, what)).collect(),
            other => self.speech(other, what).into_iter().collect(),
        }
    }

    /// A node reference (checked against the nodes later, when all are read).
    pub fn reference(&mut self, y: &Yaml, what: &str) -> Option<Ref> {
        let (name, pos) = text(y, what, self.p)?;
        if !is_identifier(&name) {
            self.p.add(
                pos,
                format!("`{name}` is not a node id"),
                "node ids are letters, digits, `_`, `-`",
            );
            return None;
        }
        Some(Ref { name, pos })
    }
}
