//! Scripted conversations with expected outcomes, beside the dialplan they test
//! (`hotline.tests.yaml` next to `hotline.yaml`), run by `voxnav test DIR`:
//!
//! ```yaml
//! dialplan: hotline.yaml
//! tests:
//!   - name: order status by voice
//!     turns:
//!       - caller: where is my order          # or "#dtmf 472198", "#silence", "#hangup", "#no-agent"
//!         expect: { intent: order_status, decision: dialplan, node: order_lookup/ask_number }
//!       - caller: four seven two one nine eight
//!         expect: { decision: answer, say: shipped, slot: "order_number=472198" }
//! ```
//!
//! A test may set `vars:` for its call (e.g. `orders_api` pointing at a closed port, to
//! check the spoken fallback when the backend is down, or `caller_number`), and `start:`
//! expectations on what the call does before the caller speaks (its greeting). Expectation keys: `intent` (a name or `none`), `decision`, `kb` (an id or `none`), `node`
//! (where the turn ended), `say` (text the bot said contains it), `action`, `slot`
//! (`name=value`), `transfer` (the queue or URI). The report also lists the nodes and branches
//! no test reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::{Action, CallEngine, Event, Hotline};
use super::error::Problems;
use super::nodes::Node;
use super::read::{MapReader, text};
use super::sim::{self, BotTurn, HttpFn};
use super::yaml;

/// One scripted conversation.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    /// Variables set for this conversation (e.g. a backend address that is down).
    pub vars: BTreeMap<String, String>,
    /// Expectations on the call's start (before the caller's first turn).
    pub start: BTreeMap<String, String>,
    pub turns: Vec<(String, BTreeMap<String, String>, usize)>,
}

/// A test file.
#[derive(Debug, Clone)]
pub struct TestFile {
    pub path: PathBuf,
    pub dialplan: PathBuf,
    pub scripts: Vec<Script>,
}

/// Reads a `*.tests.yaml` file.
pub fn read(path: &Path) -> Result<TestFile, String> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let tree = yaml::parse(&source)
        .map_err(|e| format!("{shown}:{}:{}: YAML: {}", e.pos.line, e.pos.col, e.message))?;
    let mut p = Problems::new(&shown);
    let mut top = MapReader::new(&tree, "a test file", &mut p);
    let dialplan = top
        .require("dialplan", &mut p)
        .and_then(|y| text(y, "dialplan", &mut p));
    let mut scripts = Vec::new();
    if let Some(yaml::Yaml::Seq { items, .. }) = top.require("tests", &mut p) {
        for item in items {
            let mut m = MapReader::new(item, "a test", &mut p);
            let name = m
                .require("name", &mut p)
                .and_then(|y| text(y, "name", &mut p))
                .map(|(t, _)| t)
                .unwrap_or_default();
            let mut vars = BTreeMap::new();
            if let Some(v) = m.get("vars") {
                let vm = MapReader::new(v, "vars", &mut p);
                for (k, v) in vm.entries() {
                    if let Some((t, _)) = text(v, "value", &mut p) {
                        vars.insert(k.name.clone(), t);
                    }
                }
            }
            let start = m
                .get("start")
                .map(|e| expectations(e, &mut p))
                .unwrap_or_default();
            let mut turns = Vec::new();
            if let Some(yaml::Yaml::Seq { items, .. }) = m.require("turns", &mut p) {
                for t in items {
                    let mut tm = MapReader::new(t, "a turn", &mut p);
                    let caller = tm
                        .require("caller", &mut p)
                        .and_then(|y| text(y, "caller", &mut p));
                    let expect = tm
                        .get("expect")
                        .map(|e| expectations(e, &mut p))
                        .unwrap_or_default();
                    tm.finish(&[], &mut p);
                    if let Some((c, pos)) = caller {
                        turns.push((c, expect, pos.line));
                    }
                }
            }
            m.finish(&[], &mut p);
            scripts.push(Script {
                name,
                vars,
                start,
                turns,
            });
        }
    }
    top.finish(&[], &mut p);
    if let Some(first) = p.list.first() {
        return Err(first.to_string());
    }
    let (dialplan, _) = dialplan.ok_or("no dialplan")?;
    Ok(TestFile {
        dialplan: path.parent().unwrap_or(Path::new(".")).join(dialplan),
        path: path.to_path_buf(),
        scripts,
    })
}

/// An `expect:` (or `start:`) map: key -> expected text.
fn expectations(e: &yaml::Yaml, p: &mut Problems) -> BTreeMap<String, String> {
    let em = MapReader::new(e, "expect", p);
    let mut expect = BTreeMap::new();
    for (k, v) in em.entries() {
        if let Some((t, _)) = text(v, "expected value", p) {
            expect.insert(k.name.clone(), t);
        }
    }
    expect
}

/// Compares a turn with its expectations; returns the mismatches.
pub fn mismatches(turn: &BotTurn, expect: &BTreeMap<String, String>) -> Vec<String> {
    let d = &turn.decision;
    let mut out = Vec::new();
    for (key, want) in expect {
        let got = match key.as_str() {
            "intent" => d.intent.clone().unwrap_or_else(|| "none".into()),
            "decision" => d.decision.name().to_string(),
            "kb" => d.kb.clone().unwrap_or_else(|| "none".into()),
            "node" => sim::last_node(d),
            "action" => d.action.clone(),
            "say" => {
                let said = d.say.join(" ");
                if said.to_lowercase().contains(&want.to_lowercase()) {
                    continue;
                }
                format!("\"{said}\"")
            }
            "slot" => {
                let (name, value) = want.split_once('=').unwrap_or((want, ""));
                let got = d.slots.get(name).cloned().unwrap_or_default();
                if got == value {
                    continue;
                }
                format!("{name}={got}")
            }
            "transfer" => turn
                .actions
                .iter()
                .find_map(|a| match a {
                    Action::Transfer { target, .. } => {
                        Some(target.trim_start_matches("queue:").to_string())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "none".into()),
            other => {
                out.push(format!("unknown expectation `{other}`"));
                continue;
            }
        };
        if &got != want {
            out.push(format!("{key}: expected {want}, got {got}"));
        }
    }
    out
}

/// The outcome of a test run.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: Vec<String>,
    pub unreached_nodes: Vec<String>,
    pub untaken_branches: Vec<String>,
}

/// Runs every script of `file` against `hotline`.
pub fn run(
    file: &TestFile,
    hotline: &Arc<Hotline>,
    vars: &BTreeMap<String, String>,
    http: HttpFn,
) -> Report {
    let mut report = Report::default();
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for script in &file.scripts {
        let mut all = vars.clone();
        all.extend(script.vars.clone());
        let mut engine = CallEngine::new(hotline.clone(), crate::nlu::dates::with_today(all));
        let mut failures = Vec::new();
        if let Some(t) = sim::step(&mut engine, Event::Start, http) {
            note_path(&t.decision.path, &mut visited, &mut edges);
            for m in mismatches(&t, &script.start) {
                failures.push(format!("{}: call start: {m}", file.path.display()));
            }
        }
        for (line, expect, source_line) in &script.turns {
            let Some(event) = sim::parse_line(line) else {
                continue;
            };
            match sim::step(&mut engine, event, http) {
                Some(t) => {
                    note_path(&t.decision.path, &mut visited, &mut edges);
                    for m in mismatches(&t, expect) {
                        failures.push(format!(
                            "{}:{source_line}: `{line}`: {m}",
                            file.path.display()
                        ));
                    }
                }
                None => failures.push(format!(
                    "{}:{source_line}: `{line}`: the call had already ended",
                    file.path.display()
                )),
            }
        }
        if failures.is_empty() {
            report.passed += 1;
        } else {
            report
                .failed
                .push(format!("{}\n    {}", script.name, failures.join("\n    ")));
        }
    }
    let plan = &hotline.plan;
    for (id, node) in &plan.nodes {
        if !visited.contains(id) {
            report.unreached_nodes.push(id.clone());
            continue;
        }
        let branches: Vec<String> = match &node.kind {
            Node::Route(_) | Node::Branch(_) => {
                node.kind.targets().into_iter().map(|t| t.name).collect()
            }
            _ => Vec::new(),
        };
        for target in branches {
            if !edges.contains(&(id.clone(), target.clone())) {
                report.untaken_branches.push(format!("{id} -> {target}"));
            }
        }
    }
    report.untaken_branches.dedup();
    report
}

fn note_path(
    path: &[String],
    visited: &mut BTreeSet<String>,
    edges: &mut BTreeSet<(String, String)>,
) {
    visited.extend(path.iter().cloned());
    for w in path.windows(2) {
        edges.insert((w[0].clone(), w[1].clone()));
    }
}

/// Held-out phrasings (`phrase<TAB>expected` lines; `#` comments): what a hotline's first `ask`
/// should make of each, as an intent name, `kb:<entry id>` or `none`.
pub fn read_heldout(path: &Path) -> std::io::Result<Vec<(String, String)>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect())
}

/// A call on `hotline` from its start to its first question, with no backend running: a
/// request on the way (the demo's caller lookup) fails, and the flow takes its error path.
pub fn started_call(hotline: &Arc<Hotline>) -> CallEngine {
    let mut call = CallEngine::new(hotline.clone(), BTreeMap::new());
    let no_backend: HttpFn = &|_, _, _, _| Err("no backend in this measurement".into());
    sim::step(&mut call, Event::Start, no_backend);
    call
}

/// What the hotline's first `ask` decides for `phrase`: an intent, `kb:<id>`, or `none`
/// (out of scope or not understood). Scored against `read_heldout`.
pub fn first_turn_decision(hotline: &Arc<Hotline>, phrase: &str) -> String {
    let mut call = started_call(hotline);
    let Some(d) = call
        .handle(Event::Speech {
            text: phrase.into(),
            confidence: 0.9,
        })
        .decision
    else {
        return "none".into();
    };
    match (d.kb, d.reason.starts_with("not understood"), d.intent) {
        (Some(kb), _, _) => format!("kb:{kb}"),
        (None, false, Some(i)) => i,
        _ => "none".into(),
    }
}
