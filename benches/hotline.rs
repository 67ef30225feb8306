//! The demo hotline's NLU on held-out phrasings (`dialplans/hotline.heldout.tsv`, written apart
//! from its examples): intent, knowledge-base and out-of-scope accuracy as the menu `ask` decides
//! them, the dialplan's load time (read + check + NLU training, median of 5), and per-utterance
//! decision latency. Reference in the same process: the lexical router alone.
//!
//! `cargo bench --bench hotline`

use std::sync::Arc;
use std::time::Instant;

use voxnav::dialplan::engine::Hotline;
use voxnav::models::paths::ModelPaths;
use voxnav::nlu::minilm::MiniLm;
use voxnav::testkit::median;

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = std::path::Path::new(root).join("dialplans/hotline.yaml");
    let cases = voxnav::dialplan::testing::read_heldout(
        &std::path::Path::new(root).join("dialplans/hotline.heldout.tsv"),
    )
    .unwrap();
    let (weights, vocab) = ModelPaths::default().minilm();
    let embedder: Arc<dyn voxnav::nlu::intent::Embedder> =
        Arc::new(MiniLm::load(&weights, &vocab).expect("models install"));
    let mut loads = Vec::new();
    let mut hotline = None;
    for _ in 0..5 {
        let started = Instant::now();
        let plan = voxnav::dialplan::load_file(&path).unwrap();
        hotline = Some(Arc::new(Hotline::build(plan, embedder.clone())));
        loads.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let hotline = hotline.unwrap();
    let mut times = Vec::new();
    let mut wrong = Vec::new();
    for (phrase, want) in &cases {
        let started = Instant::now();
        let got = voxnav::dialplan::testing::first_turn_decision(&hotline, phrase);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if &got != want {
            wrong.push(format!("  {phrase:?}: expected {want}, got {got}"));
        }
    }
    let right = cases.len() - wrong.len();
    println!(
        "demo hotline, {} held-out phrasings: {right} right ({:.1}%)",
        cases.len(),
        100.0 * right as f64 / cases.len() as f64
    );
    for w in &wrong {
        println!("{w}");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "load (read + check + train): median {:.0} ms; decision per utterance: p50 {:.1} ms, p99 {:.1} ms",
        median(loads),
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)]
    );
}
