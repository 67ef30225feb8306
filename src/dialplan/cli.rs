//! The admin commands behind `voxnav check`, `voxnav simulate` and `voxnav test`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{CallEngine, Event, Hotline};
use super::sim;
use super::testing;
use crate::models::ModelPaths;
use crate::nlu::intent::Embedder;
use crate::nlu::minilm::MiniLm;

/// Dialplan files under `path` (a file, or every `*.yaml` in a folder except `*.tests.yaml`).
pub fn dialplan_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|f| {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".tests.")
    });
    files.sort();
    files
}

/// `voxnav check`: every problem of every dialplan; Ok(false) if any.
pub fn check(path: &Path) -> bool {
    let files = dialplan_files(path);
    if files.is_empty() {
        eprintln!("{}: no dialplan files (*.yaml) found", path.display());
        return false;
    }
    let mut ok = true;
    for f in files {
        match super::load_file(&f) {
            Ok(plan) => println!(
                "ok: {} ({}: {} intents, {} knowledge entries, {} nodes, {} flows)",
                f.display(),
                plan.name,
                plan.intents.len(),
                plan.knowledge.len(),
                plan.nodes.len(),
                plan.flows.len()
            ),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
                eprintln!("{}: refused ({} problems)", f.display(), e.problems.len());
            }
        }
    }
    ok
}

/// The production embedder.
pub fn embedder(paths: &ModelPaths) -> anyhow::Result<Arc<dyn Embedder>> {
    let (weights, vocab) = paths.minilm();
    Ok(Arc::new(MiniLm::load(&weights, &vocab)?))
}

/// Loads, checks and trains a hotline; prints how long it took to stderr.
pub fn hotline(path: &Path, embedder: Arc<dyn Embedder>) -> anyhow::Result<Arc<Hotline>> {
    let started = Instant::now();
    let plan = super::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let loaded = started.elapsed();
    let h = Hotline::build(plan, embedder);
    eprintln!(
        "voxnav: {} loaded in {} ms (read and check {} ms, NLU training {} ms)",
        path.display(),
        started.elapsed().as_millis(),
        loaded.as_millis(),
        (started.elapsed() - loaded).as_millis()
    );
    Ok(Arc::new(h))
}

/// `--demo-orders` starts the built-in order service and points `orders_api` at it.
pub fn start_demo_orders(vars: &mut BTreeMap<String, String>) -> anyhow::Result<()> {
    let addr = crate::net::http::spawn_demo_orders("127.0.0.1:0", Duration::ZERO)?;
    vars.insert("orders_api".into(), format!("http://{addr}"));
    Ok(())
}

fn real_http(
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    // The same client calls use (https included), without any backend's credentials: those
    // live in the server config.
    static CLIENT: std::sync::OnceLock<crate::net::backend::Backends> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(Default::default)
        .fetch(method, url, body, timeout)
}

/// `voxnav simulate`.
pub fn simulate(
    hotline: Arc<Hotline>,
    vars: BTreeMap<String, String>,
    json: bool,
) -> anyhow::Result<()> {
    let mut engine = CallEngine::new(hotline, crate::nlu::dates::with_today(vars));
    let stdout = std::io::stdout();
    let print = |turn: &sim::BotTurn| {
        let mut out = stdout.lock();
        if json {
            let _ = writeln!(out, "{}", sim::to_json(turn));
        } else {
            for line in &turn.decision.say {
                let _ = writeln!(out, "bot: {line}");
            }
            let d = &turn.decision;
            let _ = writeln!(
                out,
                "     [{} | intent {} {:.2} | kb {} | {} | node {} | next: {}]",
                d.decision.name(),
                d.intent.as_deref().unwrap_or("-"),
                d.confidence,
                d.kb.as_deref().unwrap_or("-"),
                d.reason,
                sim::last_node(d),
                d.action
            );
        }
        let _ = out.flush();
    };
    if let Some(t) = sim::step(&mut engine, Event::Start, &real_http) {
        print(&t);
    }
    if !json {
        eprintln!(
            "(type what the caller says; #dtmf 1234, #silence, #hangup, #confidence 0.5 TEXT; Ctrl-D ends)"
        );
    }
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Some(event) = sim::parse_line(&line) else {
            continue;
        };
        if let Some(t) = sim::step(&mut engine, event, &real_http) {
            print(&t);
        }
        if engine.is_ended() {
            break;
        }
    }
    Ok(())
}

/// `voxnav test`: every `*.tests.yaml` under `path`; Ok(false) if any test failed.
pub fn test(
    path: &Path,
    embedder: Arc<dyn Embedder>,
    vars: BTreeMap<String, String>,
) -> anyhow::Result<bool> {
    let mut files: Vec<PathBuf> = if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".tests.yaml"))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{}: no *.tests.yaml files", path.display());
    }
    let mut all_ok = true;
    for f in files {
        let file = testing::read(&f).map_err(|e| anyhow::anyhow!(e))?;
        let hotline = hotline(&file.dialplan, embedder.clone())?;
        let report = testing::run(&file, &hotline, &vars, &real_http);
        println!(
            "{}: {} passed, {} failed",
            f.display(),
            report.passed,
            report.failed.len()
        );
        for failure in &report.failed {
            println!("  FAILED {failure}");
        }
        if !report.unreached_nodes.is_empty() {
            println!(
                "  nodes no test reaches: {}",
                report.unreached_nodes.join(", ")
            );
        }
        if !report.untaken_branches.is_empty() {
            println!(
                "  branches no test takes: {}",
                report.untaken_branches.join(", ")
            );
        }
        all_ok &= report.failed.is_empty();
    }
    Ok(all_ok)
}
