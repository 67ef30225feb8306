//! Reading a dialplan file into the model; `check` then looks at it as a whole. A dialplan
//! with any problem is refused whole: nothing half-loads.

use std::collections::BTreeMap;
use std::path::Path;

use super::check;
use super::error::{DialplanError, Problems, did_you_mean};
use super::model::*;
use super::nodes::{self, KINDS, Node};
use super::read::{Ctx, MapReader, fraction, number, parse_source, read_source, text, texts};
use super::yaml::Yaml;

/// The Piper voice `voxnav models install` installs.
pub const DEFAULT_VOICE: &str = "en_US-joe-medium";
/// A Mandarin hotline's voice unless it names one: espeak-ng's Mandarin.
pub const MANDARIN_VOICE: &str = "espeak:cmn-latn-pinyin";

/// Reads and checks one dialplan file.
pub fn load_file(path: &Path) -> Result<Dialplan, DialplanError> {
    let (shown, source) = read_source(path)?;
    load_str(&shown, &source)
}

/// Reads and checks a dialplan from text (`file` names it in errors).
pub fn load_str(file: &str, source: &str) -> Result<Dialplan, DialplanError> {
    let mut p = Problems::new(file);
    let Some(tree) = parse_source(source, &mut p) else {
        return Err(DialplanError { problems: p.list });
    };
    let plan = read_plan(file, &tree, &mut p);
    if let Some(plan) = &plan {
        check::check(plan, &mut p);
    }
    match plan {
        Some(plan) if p.list.is_empty() => Ok(plan),
        _ => {
            p.list.sort_by_key(|x| x.pos);
            if p.list.is_empty() {
                p.add(tree.pos(), "the dialplan is incomplete", "");
            }
            Err(DialplanError { problems: p.list })
        }
    }
}

fn read_plan(file: &str, tree: &Yaml, p: &mut Problems) -> Option<Dialplan> {
    let mut top = MapReader::new(tree, "the dialplan", p);
    let name = top
        .require("name", p)
        .and_then(|y| text(y, "name", p))
        .map(|(t, _)| t);
    let language = match top.get("language").and_then(|y| text(y, "language", p)) {
        None => Language::English,
        Some((l, pos)) => match l.as_str() {
            "en" | "en-US" | "english" => Language::English,
            "zh" | "zh-CN" | "mandarin" => Language::Mandarin,
            other => {
                p.add(pos, format!("language `{other}`: en or zh"), "");
                Language::English
            }
        },
    };
    let voice = top
        .get("voice")
        .and_then(|y| text(y, "voice", p))
        .map_or_else(
            // Unset: the language's installed voice.
            || match language {
                Language::Mandarin => MANDARIN_VOICE.into(),
                _ => DEFAULT_VOICE.into(),
            },
            |(t, _)| t,
        );
    let (asr_model, asr_prompt) = match top.get("asr") {
        Some(y) => {
            let mut m = MapReader::new(y, "asr", p);
            let model = m.get("model").and_then(|y| text(y, "model", p));
            let prompt = m
                .get("prompt")
                .and_then(|y| text(y, "prompt", p))
                .map(|(t, _)| t);
            m.finish(&[], p);
            let model = match model {
                Some((m, pos)) if m != "base" && m != "tiny.en" => {
                    p.add(pos, format!("ASR model `{m}`: base or tiny.en"), "");
                    m
                }
                Some((m, _)) => m,
                None => "base".into(),
            };
            (model, prompt)
        }
        None => ("base".into(), None),
    };
    // The voices there are: the installed Piper voice, or espeak-ng's (any language).
    let voice_pos = top.get("voice").map_or(top.pos, |y| y.pos());
    if voice != DEFAULT_VOICE && !voice.starts_with("espeak:") {
        p.add(
            voice_pos,
            format!(
                "voice `{voice}`: the installed voices are `{DEFAULT_VOICE}` and `espeak:NAME`"
            ),
            "e.g. `voice: espeak:cmn-latn-pinyin` for Mandarin",
        );
    } else if language == Language::Mandarin && !voice.starts_with("espeak:") {
        p.add(
            voice_pos,
            "a Mandarin hotline needs a Mandarin voice",
            "set `voice: espeak:cmn-latn-pinyin` (espeak-ng's Mandarin)",
        );
    }
    if language == Language::Mandarin && asr_model == "tiny.en" {
        p.add(
            top.pos,
            "a Mandarin hotline needs the multilingual ASR model",
            "set `asr: { model: base }`",
        );
    }
    let settings = top
        .get("settings")
        .map(|y| read_settings(y, p))
        .unwrap_or_default();
    let prompts: BTreeMap<String, String> = top
        .get("prompts")
        .map(|y| {
            let m = MapReader::new(y, "prompts", p);
            m.entries()
                .iter()
                .filter_map(|(k, v)| text(v, "prompt", p).map(|(t, _)| (k.name.clone(), t)))
                .collect()
        })
        .unwrap_or_default();
    let vars: BTreeMap<String, String> = top
        .get("vars")
        .map(|y| {
            let m = MapReader::new(y, "vars", p);
            m.entries()
                .iter()
                .filter_map(|(k, v)| text(v, "value", p).map(|(t, _)| (k.name.clone(), t)))
                .collect()
        })
        .unwrap_or_default();
    let intents = top
        .get("intents")
        .map(|y| read_intents(y, p))
        .unwrap_or_default();
    let slots = top
        .get("slots")
        .map(|y| read_slots(y, p))
        .unwrap_or_default();
    let knowledge = top
        .get("knowledge")
        .map(|y| read_knowledge(y, p))
        .unwrap_or_default();
    let handlers = {
        let mut cx = Ctx {
            p,
            prompts: &prompts,
        };
        top.get("handlers")
            .map(|y| read_handlers(y, &mut cx))
            .unwrap_or_default()
    };
    let start = {
        let y = top.require("start", p);
        let mut cx = Ctx {
            p,
            prompts: &prompts,
        };
        y.and_then(|y| cx.reference(y, "start"))
    };
    let mut node_map = BTreeMap::new();
    if let Some(y) = top.require("nodes", p) {
        read_nodes(y, "", &prompts, &mut node_map, p);
    }
    let mut flows = BTreeMap::new();
    if let Some(y) = top.get("flows") {
        let m = MapReader::new(y, "flows", p);
        for (k, v) in m.entries() {
            let mut fm = MapReader::new(v, "a flow", p);
            let start = fm.require("start", p).and_then(|y| text(y, "start", p));
            if let Some(nodes) = fm.require("nodes", p) {
                read_nodes(nodes, &k.name, &prompts, &mut node_map, p);
            }
            fm.finish(&[], p);
            if let Some((s, _)) = start {
                flows.insert(k.name.clone(), format!("{}/{}", k.name, s));
            }
        }
    }
    top.finish(&[], p);
    qualify_flow_refs(&mut node_map);
    Some(Dialplan {
        file: file.to_string(),
        name: name?,
        language,
        asr_model,
        asr_prompt,
        voice,
        settings,
        intents,
        slots,
        knowledge,
        prompts,
        vars,
        handlers,
        start: start?,
        nodes: node_map,
        flows,
    })
}

fn read_settings(y: &Yaml, p: &mut Problems) -> Settings {
    let mut m = MapReader::new(y, "settings", p);
    let d = Settings::default();
    let s = Settings {
        max_turns: m
            .get("max_turns")
            .and_then(|y| number(y, "max_turns", p))
            .map_or(d.max_turns, |n| n as u32),
        min_confidence: m
            .get("min_confidence")
            .and_then(|y| fraction(y, "min_confidence", p))
            .unwrap_or(d.min_confidence),
        kb_threshold: m
            .get("kb_threshold")
            .and_then(|y| fraction(y, "kb_threshold", p))
            .unwrap_or(d.kb_threshold),
        no_input_ms: m
            .get("no_input_ms")
            .and_then(|y| number(y, "no_input_ms", p))
            .unwrap_or(d.no_input_ms),
        anger_threshold: m
            .get("anger_threshold")
            .and_then(|y| fraction(y, "anger_threshold", p))
            .unwrap_or(d.anger_threshold),
        turn: m.get("turn").map(|y| read_turn(y, p)).unwrap_or_default(),
        confirm_below: m
            .get("confirm_below")
            .and_then(|y| fraction(y, "confirm_below", p))
            .unwrap_or(d.confirm_below),
        min_asr_confidence: m
            .get("min_asr_confidence")
            .and_then(|y| fraction(y, "min_asr_confidence", p))
            .unwrap_or(d.min_asr_confidence),
    };
    m.finish(&[], p);
    s
}

/// A `turn:` map of turn-taking thresholds (hotline settings and the server config).
pub fn read_turn(y: &Yaml, p: &mut Problems) -> super::model::TurnOverrides {
    let mut m = MapReader::new(y, "turn", p);
    let detector = m
        .get("detector")
        .and_then(|y| text(y, "detector", p))
        .and_then(|(t, pos)| match t.as_str() {
            "model" => Some(super::model::DetectorKind::Model),
            "energy" => Some(super::model::DetectorKind::Energy),
            _ => {
                p.add(
                    pos,
                    format!("`{t}` is not a turn detector"),
                    "model or energy",
                );
                None
            }
        });
    let complete_threshold = m
        .get("complete_threshold")
        .and_then(|y| fraction(y, "complete_threshold", p));
    let mut ms = |key: &'static str, p: &mut Problems, range: std::ops::RangeInclusive<u64>| {
        let y = m.get(key)?;
        let n = number(y, key, p)?;
        if !range.contains(&n) {
            p.add(
                y.pos(),
                format!("`{key}: {n}` is out of range"),
                format!("{}-{} ms", range.start(), range.end()),
            );
            return None;
        }
        Some(n as u32)
    };
    let t = super::model::TurnOverrides {
        detector,
        pause_ms: ms("pause_ms", p, 100..=2000),
        end_silence_ms: ms("end_silence_ms", p, 200..=10_000),
        digits_end_silence_ms: ms("digits_end_silence_ms", p, 200..=10_000),
        barge_in_ms: ms("barge_in_ms", p, 60..=2000),
        max_turn_ms: ms("max_turn_ms", p, 2000..=120_000),
        complete_threshold,
    };
    m.finish(&[], p);
    t
}

fn read_intents(y: &Yaml, p: &mut Problems) -> Vec<IntentDef> {
    let m = MapReader::new(y, "intents", p);
    let mut out = Vec::new();
    for (k, v) in m.entries() {
        let mut im = MapReader::new(v, "an intent", p);
        let examples: Vec<String> = im
            .require("examples", p)
            .map(|y| texts(y, "example", p))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let keywords = im
            .get("keywords")
            .map(|y| texts(y, "keyword", p))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        im.finish(&[], p);
        if examples.len() < 3 {
            p.add(
                k.pos,
                format!("intent `{}` has {} examples", k.name, examples.len()),
                "give 5-20 ways callers say it; 3 is the minimum",
            );
        }
        out.push(IntentDef {
            name: k.name.clone(),
            examples,
            keywords,
            pos: k.pos,
        });
    }
    out
}

fn read_slots(y: &Yaml, p: &mut Problems) -> Vec<SlotDef> {
    use crate::nlu::dates::Tense;
    const TYPES: [&str; 8] = [
        "digits", "yes_no", "date", "time", "money", "phone", "code", "rating",
    ];
    let m = MapReader::new(y, "slots", p);
    let mut out = Vec::new();
    for (k, v) in m.entries() {
        let mut sm = MapReader::new(v, "a slot", p);
        let kind = sm.require("type", p).and_then(|y| text(y, "type", p));
        let bound = |sm: &mut MapReader, key: &'static str, default: usize, p: &mut Problems| {
            sm.get(key)
                .and_then(|y| number(y, key, p))
                .map_or(default, |n| n as usize)
        };
        let kind = match kind {
            Some((t, _)) if t == "digits" => {
                let min = bound(&mut sm, "min_digits", 1, p);
                let max = bound(&mut sm, "max_digits", 20, p);
                if min > max {
                    p.add(
                        k.pos,
                        format!("slot `{}`: min_digits {min} > max_digits {max}", k.name),
                        "",
                    );
                }
                SlotKind::Digits { min, max }
            }
            Some((t, _)) if t == "code" => {
                let min = bound(&mut sm, "min_length", 3, p);
                let max = bound(&mut sm, "max_length", 12, p);
                if min > max || min == 0 {
                    p.add(
                        k.pos,
                        format!("slot `{}`: min_length {min}, max_length {max}", k.name),
                        "1 <= min_length <= max_length",
                    );
                }
                SlotKind::Code { min, max }
            }
            Some((t, _)) if t == "date" => {
                let tense = sm
                    .get("tense")
                    .and_then(|y| text(y, "tense", p))
                    .and_then(|(t, pos)| match t.as_str() {
                        "past" => Some(Tense::Past),
                        "future" => Some(Tense::Future),
                        "either" => Some(Tense::Either),
                        _ => {
                            p.add(
                                pos,
                                format!("`{t}` is not a tense"),
                                "past, future or either",
                            );
                            None
                        }
                    })
                    .unwrap_or_default();
                SlotKind::Date { tense }
            }
            Some((t, _)) if t == "rating" => {
                let max = bound(&mut sm, "max", 5, p);
                if !(2..=10).contains(&max) {
                    p.add(
                        k.pos,
                        format!("slot `{}`: a rating from 1 to {max}", k.name),
                        "max is 2 to 10 (5 is usual)",
                    );
                }
                SlotKind::Rating { max: max as u32 }
            }
            Some((t, _)) if t == "yes_no" => SlotKind::YesNo,
            Some((t, _)) if t == "time" => SlotKind::Time,
            Some((t, _)) if t == "money" => SlotKind::Money,
            Some((t, _)) if t == "phone" => SlotKind::Phone,
            Some((t, pos)) => {
                p.add(
                    pos,
                    format!("unknown slot type `{t}`"),
                    did_you_mean(&t, TYPES),
                );
                sm.finish(&[], p);
                continue;
            }
            None => {
                sm.finish(&[], p);
                continue;
            }
        };
        sm.finish(&[], p);
        out.push(SlotDef {
            name: k.name.clone(),
            kind,
            pos: k.pos,
        });
    }
    out
}

fn read_knowledge(y: &Yaml, p: &mut Problems) -> Vec<KbDef> {
    let mut out: Vec<KbDef> = Vec::new();
    let Yaml::Seq { items, .. } = y else {
        p.add(y.pos(), "knowledge is a list of entries (`- id: ...`)", "");
        return out;
    };
    for item in items {
        let mut m = MapReader::new(item, "a knowledge entry", p);
        let id = m.require("id", p).and_then(|y| text(y, "id", p));
        let topic = m
            .get("topic")
            .and_then(|y| text(y, "topic", p))
            .map(|(t, _)| t);
        let questions: Vec<String> = m
            .require("questions", p)
            .map(|y| texts(y, "question", p))
            .unwrap_or_default()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let answer = m
            .require("answer", p)
            .and_then(|y| text(y, "answer", p))
            .map(|(t, _)| t);
        m.finish(&[], p);
        if let (Some((id, pos)), Some(answer)) = (id, answer) {
            if out.iter().any(|e| e.id == id) {
                p.add(
                    pos,
                    format!("duplicate knowledge id `{id}`"),
                    "ids must be unique",
                );
            }
            if questions.is_empty() {
                p.add(pos, format!("knowledge entry `{id}` has no questions"), "");
            }
            out.push(KbDef {
                id,
                topic,
                questions,
                answer,
                pos,
            });
        }
    }
    out
}

fn read_handlers(y: &Yaml, cx: &mut Ctx) -> Handlers {
    let mut m = MapReader::new(y, "handlers", cx.p);
    let mut get = |key: &'static str, cx: &mut Ctx| m.get(key).and_then(|y| cx.reference(y, key));
    let h = Handlers {
        agent: get("agent", cx),
        goodbye: get("goodbye", cx),
        angry: get("angry", cx),
        no_input: get("no_input", cx),
        no_match: get("no_match", cx),
        max_turns: get("max_turns", cx),
    };
    m.finish(&[], cx.p);
    h
}

fn read_nodes(
    y: &Yaml,
    flow: &str,
    prompts: &BTreeMap<String, String>,
    out: &mut BTreeMap<String, NodeDef>,
    p: &mut Problems,
) {
    let m = MapReader::new(y, "nodes", p);
    for (k, v) in m.entries() {
        let id = if flow.is_empty() {
            k.name.clone()
        } else {
            format!("{flow}/{}", k.name)
        };
        let mut nm = MapReader::new(v, "a node", p);
        let kinds: Vec<&'static str> = nm
            .entries()
            .iter()
            .filter_map(|(k, _)| KINDS.iter().copied().find(|x| *x == k.name))
            .collect();
        if kinds.len() != 1 {
            let first_key = nm
                .entries()
                .first()
                .map(|(k, _)| k.name.clone())
                .unwrap_or_default();
            p.add(
                k.pos,
                if kinds.is_empty() {
                    format!("node `{}` has no kind", k.name)
                } else {
                    format!(
                        "node `{}` has {} kinds ({})",
                        k.name,
                        kinds.len(),
                        kinds.join(", ")
                    )
                },
                if kinds.is_empty() {
                    format!(
                        "one of: {}; {}",
                        KINDS.join(", "),
                        did_you_mean(&first_key, KINDS.iter().copied())
                    )
                } else {
                    "one kind per node".into()
                },
            );
            continue;
        }
        let kind_name = kinds[0];
        let value = nm
            .entries()
            .iter()
            .find(|(k, _)| k.name == kind_name)
            .map(|(_, v)| v)
            .unwrap();
        let mut cx = Ctx { p, prompts };
        let kind = match kind_name {
            "say" => nodes::say::read(value, &mut nm, &mut cx).map(Node::Say),
            "ask" => nodes::ask::read(value, &mut nm, &mut cx).map(Node::Ask),
            "route" => nodes::route::read(value, &mut nm, &mut cx).map(Node::Route),
            "answer" => nodes::answer::read(value, &mut nm, &mut cx).map(Node::Answer),
            "http" => nodes::http::read(value, &mut nm, &mut cx).map(Node::Http),
            "set" => nodes::set::read(value, &mut nm, &mut cx).map(Node::Set),
            "branch" => nodes::branch::read(value, &mut nm, &mut cx).map(Node::Branch),
            "transfer" => nodes::transfer::read(value, &mut nm, &mut cx).map(Node::Transfer),
            "hangup" => nodes::hangup::read(value, &mut nm, &mut cx).map(Node::Hangup),
            "goto" => nodes::goto::read(value, &mut nm, &mut cx).map(Node::Goto),
            "call" => nodes::call::read(value, &mut nm, &mut cx).map(Node::Call),
            "voicemail" => nodes::voicemail::read(value, &mut nm, &mut cx).map(Node::Voicemail),
            "callback" => nodes::callback::read(value, &mut nm, &mut cx).map(Node::Callback),
            _ => Some(Node::Return),
        };
        let next = nm.get("next").and_then(|y| cx.reference(y, "next"));
        let pos = k.pos;
        nm.finish(&[kind_name], p);
        if let Some(kind) = kind {
            out.insert(
                id.clone(),
                NodeDef {
                    id,
                    kind,
                    next,
                    pos,
                },
            );
        }
    }
}

/// Inside a flow, a reference names the flow's own node if it has one by that name.
fn qualify_flow_refs(nodes: &mut BTreeMap<String, NodeDef>) {
    let ids: Vec<String> = nodes.keys().cloned().collect();
    for (id, node) in nodes.iter_mut() {
        let Some((flow, _)) = id.split_once('/') else {
            continue;
        };
        for r in node.next.iter_mut().chain(node.kind.targets_mut()) {
            let local = format!("{flow}/{}", r.name);
            if ids.contains(&local) {
                r.name = local;
            }
        }
    }
}
