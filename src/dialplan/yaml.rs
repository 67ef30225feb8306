//! YAML read into a tree that remembers where every value came from, so every error an
//! admin sees names file:line:col. Built on yaml-rust2's event parser (its own tree drops
//! positions). Anchors and aliases are refused: a dialplan is meant to be read top to bottom.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(m: &Marker) -> Self {
        Self {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A scalar as written (plain scalars are not typed here; readers parse what they need).
    /// `quoted` tells `"yes"` from `yes`.
    Scalar {
        text: String,
        quoted: bool,
        pos: Pos,
    },
    Seq {
        items: Vec<Yaml>,
        pos: Pos,
    },
    /// Keys in file order.
    Map {
        entries: Vec<(Key, Yaml)>,
        pos: Pos,
    },
}

/// A mapping key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Yaml {
    pub fn pos(&self) -> Pos {
        match self {
            Yaml::Scalar { pos, .. } | Yaml::Seq { pos, .. } | Yaml::Map { pos, .. } => *pos,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Yaml::Scalar {
                text,
                quoted: false,
                ..
            } if text.is_empty() || text == "~" || text == "null" => "nothing",
            Yaml::Scalar { .. } => "a scalar",
            Yaml::Seq { .. } => "a list",
            Yaml::Map { .. } => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.kind() == "nothing"
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

#[derive(Default)]
struct Builder {
    /// Open containers: a sequence, or a mapping with its pending key.
    stack: Vec<Open>,
    root: Option<Yaml>,
    error: Option<SyntaxError>,
    documents: usize,
}

enum Open {
    Seq(Vec<Yaml>, Pos),
    Map(Vec<(Key, Yaml)>, Option<Key>, Pos),
}

impl Builder {
    fn push_value(&mut self, value: Yaml) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(value);
                }
            }
            Some(Open::Seq(items, _)) => items.push(value),
            Some(Open::Map(entries, key, _)) => match key.take() {
                None => match value {
                    Yaml::Scalar { text, pos, .. } => {
                        if entries.iter().any(|(k, _)| k.name == text) && self.error.is_none() {
                            self.error = Some(SyntaxError {
                                pos,
                                message: format!("duplicate key `{text}`"),
                            });
                        }
                        *key = Some(Key { name: text, pos });
                    }
                    other => {
                        if self.error.is_none() {
                            self.error = Some(SyntaxError {
                                pos: other.pos(),
                                message: "mapping keys must be plain text".into(),
                            });
                        }
                        *key = Some(Key {
                            name: String::new(),
                            pos: other.pos(),
                        });
                    }
                },
                Some(k) => entries.push((k, value)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::of(&mark);
        match ev {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(text, style, anchor, _) => {
                if anchor != 0 && self.error.is_none() {
                    self.error = Some(SyntaxError {
                        pos,
                        message: "anchors (&name) are not supported in dialplans".into(),
                    });
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_value(Yaml::Scalar { text, quoted, pos });
            }
            Event::Alias(_) => {
                if self.error.is_none() {
                    self.error = Some(SyntaxError {
                        pos,
                        message: "aliases (*name) are not supported in dialplans".into(),
                    });
                }
                self.push_value(Yaml::Scalar {
                    text: String::new(),
                    quoted: false,
                    pos,
                });
            }
            Event::SequenceStart(..) => self.stack.push(Open::Seq(Vec::new(), pos)),
            Event::MappingStart(..) => self.stack.push(Open::Map(Vec::new(), None, pos)),
            Event::SequenceEnd | Event::MappingEnd => {
                let value = match self.stack.pop() {
                    Some(Open::Seq(items, pos)) => Yaml::Seq { items, pos },
                    Some(Open::Map(entries, _, pos)) => Yaml::Map { entries, pos },
                    None => return,
                };
                self.push_value(value);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Yaml, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        pos: Pos::of(e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    if builder.documents > 1 {
        return Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: "one YAML document per file (found a second `---`)".into(),
        });
    }
    Ok(builder.root.unwrap_or(Yaml::Scalar {
        text: String::new(),
        quoted: false,
        pos: Pos { line: 1, col: 1 },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let y = parse("name: shop\nnodes:\n  - id: start\n    say: \"hi\"\n").unwrap();
        let Yaml::Map { entries, .. } = y else {
            panic!()
        };
        assert_eq!(entries[0].0.name, "name");
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos(), Pos { line: 1, col: 7 });
        let Yaml::Seq { items, .. } = &entries[1].1 else {
            panic!()
        };
        let Yaml::Map { entries: node, .. } = &items[0] else {
            panic!()
        };
        assert_eq!(node[1].0.pos, Pos { line: 4, col: 5 });
        assert_eq!(
            node[1].1,
            Yaml::Scalar {
                text: "hi".into(),
                quoted: true,
                pos: Pos { line: 4, col: 10 }
            }
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (Pos { line: 2, col: 1 }, "duplicate key `a`")
        );
        let e = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.message.contains("anchors"), "{e:?}");
    }
}
