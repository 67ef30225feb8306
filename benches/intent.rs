//! Intent accuracy on Banking77 (`../shared/data/banking77`): train on 10 and 30 examples per
//! intent (3 fixed seeds each, mean reported) and on all of train, score every utterance of
//! test. Methods, all in this process: the router as dialplans use it (MiniLM logistic
//! regression + lexical + out-of-scope off), the embedding classifier alone, nearest centroid
//! of embeddings, and the lexical classifier alone. Reference numbers (scikit-learn, same data)
//! are in the speech stack doc: MiniLM + logistic regression 85.8 / 89.9 / 92.8%.
//!
//! Also: per-utterance classification latency (embedding + routing), p50/p99.
//!
//! `cargo bench --bench intent` (about 4 minutes: 13,000 sentences are embedded once).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use voxnav::models::paths::ModelPaths;
use voxnav::nlu::intent::{Embedder, Example, IntentRouter, RouterConfig};
use voxnav::nlu::minilm::{MiniLm, dot, normalize};

/// Rows of a two-column CSV with RFC 4180 quoting.
fn read_csv(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    let (mut field, mut fields, mut quoted) = (String::new(), Vec::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            ('\n', false) => {
                fields.push(std::mem::take(&mut field));
                if let [t, c] = fields.as_slice() {
                    rows.push((t.clone(), c.clone()));
                }
                fields.clear();
            }
            ('\r', false) => {}
            _ => field.push(c),
        }
    }
    rows.remove(0); // header
    rows
}

/// Precomputed embeddings (each sentence is embedded once for all runs).
struct Cached(HashMap<String, Vec<f32>>);

impl Embedder for Cached {
    fn embed(&self, text: &str) -> Vec<f32> {
        self.0[text].clone()
    }
}

/// Embeddings are kept in target/ between runs (keyed by the weights' size and the texts), so
/// tuning the classifier does not pay a minute of embedding each time.
fn cache_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/banking77-embeddings.bin")
}

fn load_cache(texts: &[&str]) -> Option<Cached> {
    let bytes = std::fs::read(cache_path()).ok()?;
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if floats.len() != texts.len() * 384 {
        return None;
    }
    Some(Cached(
        texts
            .iter()
            .zip(floats.chunks(384))
            .map(|(t, v)| (t.to_string(), v.to_vec()))
            .collect(),
    ))
}

fn save_cache(cache: &Cached) {
    let mut texts: Vec<&String> = cache.0.keys().collect();
    texts.sort();
    let bytes: Vec<u8> = texts
        .iter()
        .flat_map(|t| cache.0[*t].iter().flat_map(|f| f.to_le_bytes()))
        .collect();
    let _ = std::fs::write(cache_path(), bytes);
}

fn sample(train: &[(String, String)], k: usize, seed: u64) -> Vec<Example> {
    let mut by_intent: HashMap<&str, Vec<&str>> = HashMap::new();
    for (t, c) in train {
        by_intent.entry(c).or_default().push(t);
    }
    let mut intents: Vec<&str> = by_intent.keys().copied().collect();
    intents.sort();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::new();
    for intent in intents {
        let mut texts = by_intent[intent].clone();
        for i in (1..texts.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            texts.swap(i, (state % (i as u64 + 1)) as usize);
        }
        out.extend(texts.into_iter().take(k).map(|t| Example {
            intent: intent.to_string(),
            text: t.to_string(),
        }));
    }
    out
}

fn accuracy(router: &IntentRouter, emb: &dyn Embedder, test: &[(String, String)]) -> f64 {
    let correct = test
        .iter()
        .filter(|(t, c)| router.classify(emb, t).best == *c)
        .count();
    correct as f64 / test.len() as f64
}

fn centroid_accuracy(train: &[Example], cache: &Cached, test: &[(String, String)]) -> f64 {
    let mut sums: HashMap<&str, Vec<f32>> = HashMap::new();
    for e in train {
        let v = &cache.0[&e.text];
        let s = sums.entry(&e.intent).or_insert_with(|| vec![0.0; v.len()]);
        s.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    }
    for v in sums.values_mut() {
        normalize(v);
    }
    let correct = test
        .iter()
        .filter(|(t, c)| {
            let e = &cache.0[t];
            sums.iter()
                .max_by(|a, b| dot(a.1, e).total_cmp(&dot(b.1, e)))
                .is_some_and(|(i, _)| i == c)
        })
        .count();
    correct as f64 / test.len() as f64
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/banking77");
    let train = read_csv(&data.join("train.csv"));
    let test = read_csv(&data.join("test.csv"));
    println!(
        "Banking77: {} train, {} test utterances",
        train.len(),
        test.len()
    );
    let (weights, vocab) = ModelPaths::default().minilm();
    let model = MiniLm::load(&weights, &vocab).expect("run `voxnav models install` first");

    // Embed every sentence once, on both cores.
    let started = Instant::now();
    let mut texts: Vec<&str> = train.iter().chain(&test).map(|(t, _)| t.as_str()).collect();
    texts.sort();
    texts.dedup();
    let halves: Vec<&[&str]> = texts.chunks(texts.len().div_ceil(2)).collect();
    let cache = load_cache(&texts).unwrap_or_else(|| {
        std::thread::scope(|s| {
            let jobs: Vec<_> = halves
                .iter()
                .map(|half| {
                    let model = &model;
                    s.spawn(move || {
                        half.iter()
                            .map(|t| (t.to_string(), model.embed(t)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            Cached(jobs.into_iter().flat_map(|j| j.join().unwrap()).collect())
        })
    });
    save_cache(&cache);
    let embed_secs = started.elapsed().as_secs_f64();
    if embed_secs < 5.0 {
        println!(
            "{} sentence embeddings loaded from {}",
            texts.len(),
            cache_path().display()
        );
    } else {
        println!(
            "embedded {} sentences in {embed_secs:.1} s on 2 threads ({:.1} ms each per thread)",
            texts.len(),
            embed_secs * 2000.0 / texts.len() as f64
        );
    }

    let configs: [(&str, RouterConfig); 3] = [
        (
            "router (MiniLM LR + lexical: 0.75/0.25 with the nearest example under 20 per intent, 0.6/0.4 with the lexical LR from 20)",
            RouterConfig::default(),
        ),
        (
            "MiniLM logistic regression alone",
            RouterConfig {
                embedding_weight: 1.0,
                many_embedding_weight: 1.0,
                ..Default::default()
            },
        ),
        (
            "lexical (TF-IDF words + char grams; nearest example under 20 per intent, LR from 20) alone",
            RouterConfig {
                embedding_weight: 0.0,
                many_embedding_weight: 0.0,
                ..Default::default()
            },
        ),
    ];
    println!("\n| method | 10-shot | 30-shot | all train |\n|---|---|---|---|");
    let mut rows: Vec<(String, Vec<f64>)> = configs
        .iter()
        .map(|(n, _)| (n.to_string(), vec![]))
        .collect();
    rows.push(("MiniLM nearest centroid".into(), vec![]));
    for k in [10usize, 30, usize::MAX] {
        let seeds: &[u64] = if k == usize::MAX { &[0] } else { &[1, 2, 3] };
        let mut sums = vec![0.0; rows.len()];
        for &seed in seeds {
            let examples = sample(&train, k, seed);
            for (i, (_, config)) in configs.iter().enumerate() {
                let router =
                    IntentRouter::train(&cache, &examples, &[], RouterConfig { seed, ..*config });
                sums[i] += accuracy(&router, &cache, &test);
            }
            sums[configs.len()] += centroid_accuracy(&examples, &cache, &test);
        }
        for (row, s) in rows.iter_mut().zip(sums) {
            row.1.push(100.0 * s / seeds.len() as f64);
        }
    }
    for (name, accs) in &rows {
        println!(
            "| {name} | {:.1}% | {:.1}% | {:.1}% |",
            accs[0], accs[1], accs[2]
        );
    }

    // Latency of one utterance as a call sees it: embed + route (10-shot router, 77 intents).
    let router = IntentRouter::train(&cache, &sample(&train, 10, 1), &[], RouterConfig::default());
    let mut times: Vec<f64> = test
        .iter()
        .take(300)
        .map(|(t, _)| {
            let start = Instant::now();
            let _ = router.classify(&model, t);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "\nper-utterance classification (embed + route, 77 intents, 1 thread): p50 {:.1} ms, p99 {:.1} ms",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}
