//! The demo hotline's NLU on held-out phrasings (`dialplans/hotline.heldout.tsv`, written apart
//! from its examples) and on knowledge-base paraphrases (`dialplans/hotline.kb-paraphrases.tsv`:
//! questions worded unlike the listed variants, and out-of-scope questions): intent,
//! knowledge-base and out-of-scope accuracy as the menu `ask` decides them, the dialplan's load time (read + check + NLU training, median of 5), and per-utterance
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
    for (file, cases) in [
        ("hotline.heldout.tsv", cases),
        (
            "hotline.kb-paraphrases.tsv",
            voxnav::dialplan::testing::read_heldout(
                &std::path::Path::new(root).join("dialplans/hotline.kb-paraphrases.tsv"),
            )
            .unwrap(),
        ),
    ] {
        let mut wrong = Vec::new();
        let (mut answered, mut out_of_scope, mut wrongly_answered) = (0, 0, 0);
        for (phrase, want) in &cases {
            let started = Instant::now();
            let got = voxnav::dialplan::testing::first_turn_decision(&hotline, phrase);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if want == "none" {
                out_of_scope += 1;
                wrongly_answered += usize::from(got.starts_with("kb:"));
            } else if want.starts_with("kb:") {
                answered += usize::from(&got == want);
            }
            if &got != want {
                wrong.push(format!("  {phrase:?}: expected {want}, got {got}"));
            }
        }
        let right = cases.len() - wrong.len();
        let kb_cases = cases.iter().filter(|(_, w)| w.starts_with("kb:")).count();
        println!(
            "{file}: {} phrasings, {right} right ({:.1}%); knowledge questions answered right {answered}/{kb_cases}; out-of-scope given a knowledge answer {wrongly_answered}/{out_of_scope}",
            cases.len(),
            100.0 * right as f64 / cases.len() as f64
        );
        for w in &wrong {
            println!("{w}");
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "load (read + check + train): median {:.0} ms; decision per utterance: p50 {:.1} ms, p99 {:.1} ms",
        median(loads),
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)]
    );
}
