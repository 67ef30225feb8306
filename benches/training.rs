//! The trainers' loop: how long a trainer's change takes to go live on the demo hotline (the
//! edit, `voxnav check`, NLU training, the test gate: every scripted conversation and held-out
//! phrasing on the old and the new version, then the write and the swap), with the plain hot
//! reload (check + training + swap, no gate) as the reference in the same process; and the
//! dialplan's load time as the loop grows its example sets (Banking77 requests added as extra
//! intents, `../shared/data/banking77`).
//!
//! `cargo bench --bench training`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use voxnav::dialplan::engine::Hotline;
use voxnav::dialplan::registry::HotlineRegistry;
use voxnav::dialplan::training::{self, Assignment, Gate};
use voxnav::testkit::median;

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("voxnav-bench-training-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["hotline.yaml", "hotline.tests.yaml", "hotline.heldout.tsv"] {
        std::fs::copy(root.join("dialplans").join(f), dir.join(f)).unwrap();
    }
    let file = dir.join("hotline.yaml");
    let models = voxnav::testkit::installed_models();
    let embedder = voxnav::dialplan::cli::embedder(&models).unwrap();
    let registry = HotlineRegistry::load(&file, embedder.clone()).unwrap();
    let mut vars = BTreeMap::new();
    voxnav::dialplan::cli::start_demo_orders(&mut vars).unwrap();
    let http: voxnav::dialplan::sim::HttpFn = &voxnav::net::http::fetch;
    let gate = Gate::beside(&file, vars, http).unwrap();

    // Reference: the hot reload an upload or the file watcher does (embeddings remembered
    // from the first load, as in the server).
    let reloads: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            registry.reload().unwrap();
            ms(started)
        })
        .collect();

    // Trainers' changes the gate lets through (each a new phrasing).
    let changes = [
        ("where has my parcel got to", "intent:order_status"),
        ("when do you guys open", "kb:service_hours"),
        ("any news on my delivery", "intent:order_status"),
        ("I'd like to send these shoes back", "intent:return_refund"),
        ("what's the guarantee on this", "kb:warranty"),
    ];
    let mut live = Vec::new();
    let mut gates = Vec::new();
    for (text, target) in changes {
        // The gate alone, measured apart (it runs again inside the review).
        let before = registry.current();
        let edited = training::add_example(
            &file.display().to_string(),
            &std::fs::read_to_string(&file).unwrap(),
            &Assignment::parse(target).unwrap(),
            text,
        )
        .unwrap();
        let plan = voxnav::dialplan::load_str("bench", &edited).unwrap();
        let after = Arc::new(Hotline::build(plan, before.embedder.clone()));
        let started = Instant::now();
        let judged = gate.judge(&before, &after, text);
        let gate_ms = ms(started);
        // The first gate embeds the conversations' and held-out phrasings (remembered after).
        if live.is_empty() {
            println!(
                "  first change after start: the gate alone {gate_ms:.0} ms (embeds the test phrasings once)"
            );
        } else {
            gates.push(gate_ms);
        }
        let started = Instant::now();
        match training::review(
            &registry,
            &gate,
            text,
            Assignment::parse(target).unwrap(),
            "bench",
        ) {
            Ok(_) => live.push(ms(started)),
            Err(e) => println!("  refused {text:?} -> {target}: {e} (gate alone: {judged:?})"),
        }
    }
    let reload = median(reloads.clone());
    println!("trainer's change to live (edit, check, train, gate, write, swap), demo hotline:");
    println!(
        "  median {:.0} ms over {} changes (min {:.0}, max {:.0}); the gate alone (31 conversations + 42 held-out phrasings, on both versions) median {:.0} ms after the first",
        median(live.clone()),
        live.len(),
        live.iter().cloned().fold(f64::MAX, f64::min),
        live.iter().cloned().fold(0.0, f64::max),
        median(gates.clone())
    );
    println!(
        "  reference: plain hot reload (check, train, swap) median {reload:.0} ms; change to live is {:.1}x a reload",
        median(live.clone()) / reload
    );

    // Load time as the examples grow: Banking77 requests as extra intents.
    let source = std::fs::read_to_string(root.join("dialplans/hotline.yaml")).unwrap();
    let csv = std::fs::read_to_string(root.join("../shared/data/banking77/train.csv")).unwrap();
    let mut by_category: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        // One record per line (the few quoted records spanning lines are skipped).
        let Some((text, category)) = line.rsplit_once(',') else {
            continue;
        };
        if category.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            by_category
                .entry(category.to_string())
                .or_default()
                .push(text.trim_matches('"').replace('\\', "").replace('"', "'"));
        }
    }
    println!(
        "dialplan load time as the example sets grow (median of 3; read + check, NLU training cold, then warm: the rebuild after one more example, embeddings remembered):"
    );
    for per_intent in [0usize, 5, 13, 26] {
        let mut extra = String::new();
        let mut added = 0;
        if per_intent > 0 {
            for (category, texts) in &by_category {
                extra.push_str(&format!("  b77_{category}:\n    examples:\n"));
                for t in texts.iter().take(per_intent) {
                    extra.push_str(&format!("      - \"{t}\"\n"));
                    added += 1;
                }
            }
        }
        let grown = source.replacen("\nslots:", &format!("\n{extra}slots:"), 1);
        let (mut checks, mut trainings, mut warm) = (Vec::new(), Vec::new(), Vec::new());
        let mut examples = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let plan = voxnav::dialplan::load_str("grown.yaml", &grown).unwrap();
            checks.push(ms(started));
            examples = plan.intents.iter().map(|i| i.examples.len()).sum::<usize>();
            let cached: Arc<dyn voxnav::nlu::intent::Embedder> = Arc::new(
                voxnav::nlu::intent::CachedEmbedder::new(embedder.clone(), 100_000),
            );
            let started = Instant::now();
            let _ = Hotline::build(plan, cached.clone());
            trainings.push(ms(started));
            let more = training::add_example(
                "grown.yaml",
                &grown,
                &Assignment::Intent("order_status".into()),
                "where has my parcel got to",
            )
            .unwrap();
            let plan = voxnav::dialplan::load_str("grown.yaml", &more).unwrap();
            let started = Instant::now();
            let _ = Hotline::build(plan, cached);
            warm.push(ms(started));
        }
        println!(
            "  {examples:>5} examples ({added:>4} added): read + check {:.1} ms, training cold {:.0} ms, warm {:.0} ms",
            median(checks.clone()),
            median(trainings.clone()),
            median(warm.clone())
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
