//! The real all-MiniLM-L6-v2 embedder (installed by `voxnav models install`): paraphrases land
//! close together and unrelated requests far apart.

use voxnav::models::paths::ModelPaths;
use voxnav::nlu::minilm::{MiniLm, dot};

fn embedder() -> MiniLm {
    let (weights, vocab) = ModelPaths::default().minilm();
    MiniLm::load(&weights, &vocab).expect("run `voxnav models install` first")
}

/// The sentence-transformers quickstart prints these similarities for all-MiniLM-L6-v2:
/// 0.6660, 0.1046 and 0.1411. Matching them to 3 decimals shows tokenizer, encoder, pooling
/// and normalisation are the reference ones.
#[test]
fn matches_the_reference_similarities() {
    let m = embedder();
    let e: Vec<Vec<f32>> = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    .iter()
    .map(|s| m.embed(s))
    .collect();
    let sims = [dot(&e[0], &e[1]), dot(&e[0], &e[2]), dot(&e[1], &e[2])];
    println!("reference sims {sims:?}");
    for (got, want) in sims.iter().zip([0.6660f32, 0.1046, 0.1411]) {
        assert!((got - want).abs() < 0.002, "{sims:?}");
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_requests() {
    let m = embedder();
    let order = m.embed("where is my order");
    let track = m.embed("can you track my package for me");
    let weather = m.embed("what's the weather like tomorrow");
    let refund = m.embed("I want my money back for this item");
    let (para, unrelated) = (dot(&order, &track), dot(&order, &weather));
    println!(
        "order~track {para:.3}, order~weather {unrelated:.3}, order~refund {:.3}",
        dot(&order, &refund)
    );
    assert!((dot(&order, &order) - 1.0).abs() < 1e-4, "unit length");
    assert!(para > 0.35, "paraphrase similarity {para}");
    assert!(unrelated < 0.25, "unrelated similarity {unrelated}");
    assert!(para > dot(&order, &refund));
}
