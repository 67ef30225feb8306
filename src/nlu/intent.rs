//! The intent router, trained when a dialplan loads from its 5-20 examples per intent.
//!
//! Two views of an utterance, combined:
//! - meaning: the sentence embedding (`Embedder`, all-MiniLM-L6-v2 in production) classified
//!   by multinomial logistic regression, which is the strongest few-shot method measured on
//!   Banking77 in `docs/nlu.md`;
//! - surface: hashed TF-IDF of words and character n-grams (`lexical`), which catches ASR
//!   misspellings and domain words the embedding blurs: the nearest example per intent for
//!   few-shot dialplans, its own (sparse) logistic regression once intents have 20 examples.
//!
//! Admins' optional keywords add a fixed boost to their intent. Out-of-scope detection: an
//! utterance whose nearest example (by embedding) is less similar than the examples of the
//! same intent are to each other (a low percentile of their leave-one-out similarities,
//! computed at training) is out of scope, whatever the classifier's ranking says.

use std::collections::HashMap;

use super::lexical::{Idf, Sparse, cosine};
use super::minilm::{MiniLm, dot, normalize};

/// Sentence embeddings behind a trait so unit tests can use a cheap, deterministic stand-in.
pub trait Embedder: Send + Sync {
    /// An L2-normalised vector.
    fn embed(&self, text: &str) -> Vec<f32>;
}

impl Embedder for MiniLm {
    fn embed(&self, text: &str) -> Vec<f32> {
        MiniLm::embed(self, text)
    }
}

/// Remembers embeddings by text, so a hotline rebuilt after a small change (a trainer's new
/// example, an edited prompt) embeds only the texts it has not seen: MiniLM takes ~15 ms a
/// sentence here, and the demo hotline's ~110 texts made every reload 1.6 s
/// (`cargo bench --bench training`). Bounded: cleared when `capacity` texts are held
/// (384 floats each, ~30 MB at the default).
pub struct CachedEmbedder {
    inner: std::sync::Arc<dyn Embedder>,
    cache: std::sync::Mutex<HashMap<String, Vec<f32>>>,
    capacity: usize,
}

impl CachedEmbedder {
    pub const DEFAULT_CAPACITY: usize = 20_000;

    pub fn new(inner: std::sync::Arc<dyn Embedder>, capacity: usize) -> Self {
        Self {
            inner,
            cache: Default::default(),
            capacity: capacity.max(1),
        }
    }

    /// Texts held now.
    pub fn len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Embedder for CachedEmbedder {
    fn embed(&self, text: &str) -> Vec<f32> {
        let cache = || self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache().get(text) {
            return v.clone();
        }
        // Embedded outside the lock: two calls never wait on each other's model run.
        let v = self.inner.embed(text);
        let mut held = cache();
        if held.len() >= self.capacity {
            held.clear();
        }
        held.insert(text.to_string(), v.clone());
        v
    }
}

/// A bag-of-words embedder for tests of the logic around the router (not for production).
#[derive(Debug, Default, Clone, Copy)]
pub struct BagOfWords;

impl Embedder for BagOfWords {
    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; 256];
        for w in super::lexical::words(text) {
            let h = w
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            v[(h % 256) as usize] += 1.0;
        }
        normalize(&mut v);
        v
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Weight of the embedding classifier against the lexical one.
    pub embedding_weight: f32,
    /// From this many examples per intent (the median), the lexical view is its own logistic
    /// regression instead of the nearest example, and `many_embedding_weight` replaces
    /// `embedding_weight`. With fewer, a classifier on words has too little to learn from:
    /// its probabilities are flat, and on the demo hotline (4-9 examples per intent) two
    /// held-out requests fell under `min_confidence`; on Banking77 at 10 per intent it
    /// gained 0.1 point.
    pub many_examples: usize,
    pub many_embedding_weight: f32,
    /// Weight of embedding similarity against lexical similarity in the nearest-example score
    /// used for out-of-scope detection (1.0 for English; lower where the embedding model is
    /// weak, e.g. Mandarin with an English MiniLM).
    pub similarity_weight: f32,
    /// Probability added to an intent whose keyword appears.
    pub keyword_boost: f32,
    /// Percentile of in-scope leave-one-out similarities used as the out-of-scope threshold.
    pub oos_percentile: f32,
    /// L2 penalty of the logistic regression, divided by the number of examples.
    pub l2: f32,
    pub seed: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            embedding_weight: 0.75,
            many_examples: 20,
            many_embedding_weight: 0.6,
            similarity_weight: 1.0,
            keyword_boost: 0.25,
            oos_percentile: 0.05,
            l2: 0.1,
            seed: 7,
        }
    }
}

/// One training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub intent: String,
    pub text: String,
}

/// What the router says about an utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    /// The best intent, or None when out of scope.
    pub intent: Option<String>,
    /// The best intent's combined probability.
    pub confidence: f32,
    /// The best in-scope candidate even when out of scope (for the decision record).
    pub best: String,
    /// Similarity of the nearest training example (embedding cosine).
    pub nearest: f32,
    pub out_of_scope: bool,
}

/// The trained router.
#[derive(Debug, Clone)]
pub struct IntentRouter {
    intents: Vec<String>,
    dims: usize,
    /// Logistic regression weights, [intent][dims + 1] (bias last).
    weights: Vec<Vec<f32>>,
    idf: Idf,
    lexical: Vec<(usize, Sparse)>,
    /// The lexical classifier, trained when intents have `many_examples`.
    lexical_classifier: Option<LexicalClassifier>,
    embeddings: Vec<(usize, Vec<f32>)>,
    keywords: Vec<(usize, Vec<String>)>,
    /// Below this nearest-example similarity an utterance is out of scope.
    pub oos_threshold: f32,
    config: RouterConfig,
}

fn softmax(z: &mut [f32]) {
    let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    z.iter_mut().for_each(|v| *v /= total);
}

/// C[m, n] = A[m, k] B[k, n] with explicit row/column strides (row-major by default).
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(k == 0 || n == 0 || b.len() > (k - 1) * rsb + (n - 1) * csb);
    // SAFETY: the asserts above bound every index the strides address.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Adam (Kingma and Ba 2015) with the usual betas, for the full-batch trainers below.
struct Adam {
    m1: Vec<f32>,
    m2: Vec<f32>,
    lr: f32,
    step: i32,
}

impl Adam {
    fn new(params: usize, lr: f32) -> Self {
        Self {
            m1: vec![0.0; params],
            m2: vec![0.0; params],
            lr,
            step: 0,
        }
    }

    /// One bias-corrected step of `w` against `grad`.
    fn update(&mut self, w: &mut [f32], grad: &[f32]) {
        let (beta1, beta2) = (0.9f32, 0.999f32);
        self.step += 1;
        let (b1t, b2t) = (1.0 - beta1.powi(self.step), 1.0 - beta2.powi(self.step));
        for ((wv, g), (m1, m2)) in w
            .iter_mut()
            .zip(grad)
            .zip(self.m1.iter_mut().zip(self.m2.iter_mut()))
        {
            *m1 = beta1 * *m1 + (1.0 - beta1) * g;
            *m2 = beta2 * *m2 + (1.0 - beta2) * g * g;
            *wv -= self.lr * (*m1 / b1t) / ((*m2 / b2t).sqrt() + 1e-8);
        }
    }
}

/// Multinomial logistic regression: mean cross-entropy + `l2`/(2n) |W|^2, full-batch Adam for
/// 300 steps (converged: 500 steps or twice the rate give the same accuracy), started from the nearest-centroid solution (each intent's weights point at its
/// mean example), so few-shot training begins where the centroid classifier already is.
/// Deterministic: no sampling, `_seed` kept for the interface.
pub fn train_logistic(
    features: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    l2: f32,
    _seed: u64,
) -> Vec<Vec<f32>> {
    let dims = features.first().map_or(0, Vec::len);
    let n = features.len();
    let cols = dims + 1;
    // W as [classes, cols] row-major (bias last); X as [n, cols] with a 1 for the bias.
    let mut w = vec![0.0f32; classes * cols];
    if n == 0 || classes == 0 {
        return vec![vec![0.0; cols]; classes];
    }
    let mut x = vec![1.0f32; n * cols];
    for (i, f) in features.iter().enumerate() {
        x[i * cols..i * cols + dims].copy_from_slice(f);
    }
    for (f, &c) in features.iter().zip(labels) {
        for (wv, fv) in w[c * cols..c * cols + dims].iter_mut().zip(f) {
            *wv += fv;
        }
    }
    for c in 0..classes {
        let row = &mut w[c * cols..c * cols + dims];
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v *= 10.0 / norm);
        }
    }
    let mut adam = Adam::new(w.len(), 0.1);
    // The penalty per example shrinks as examples grow (scikit-learn's C = 1 is l2 = 1/n).
    let l2 = l2 / n as f32;
    let mut logits = vec![0.0f32; n * classes];
    let mut grad = vec![0.0f32; classes * cols];
    for _ in 0..300 {
        // logits[n, classes] = X[n, cols] W^T
        gemm(n, cols, classes, &x, cols, 1, &w, 1, cols, &mut logits);
        for (i, row) in logits.chunks_mut(classes).enumerate() {
            softmax(row);
            row[labels[i]] -= 1.0;
            row.iter_mut().for_each(|v| *v /= n as f32);
        }
        // grad[classes, cols] = (P - Y)^T[classes, n] X[n, cols]
        gemm(
            classes, n, cols, &logits, 1, classes, &x, cols, 1, &mut grad,
        );
        for (i, g) in grad.iter_mut().enumerate() {
            if i % cols != dims {
                *g += l2 * w[i];
            }
        }
        adam.update(&mut w, &grad);
    }
    w.chunks(cols).map(<[f32]>::to_vec).collect()
}

/// Multinomial logistic regression on the lexical view's sparse TF-IDF vectors: the
/// surface-form classifier blended with the embedding one. On Banking77 it is far stronger
/// than the nearest example by cosine that it replaced (scikit-learn's TF-IDF + LR reference:
/// 74.1 / 85.5 / 91.6%), and it sees what the embedding blurs: domain words, ASR misspellings.
#[derive(Debug, Clone, Default)]
pub struct LexicalClassifier {
    /// Hashed feature -> row of `weights`; features never seen in training carry no weight.
    index: HashMap<u32, usize>,
    /// [features + 1][classes], feature-major so one feature's weights are contiguous; the
    /// last row is the bias.
    weights: Vec<f32>,
    classes: usize,
}

impl LexicalClassifier {
    /// Mean cross-entropy + `l2`/(2n) |W|^2 (the dense classifier's convention), full-batch
    /// Adam from zero for 100 steps (Banking77: 50, 100, 200 and 300 steps give 72.6, 72.1,
    /// 72.1, 72.1% at 10-shot and 90.8, 91.3, 91.1, 91.0% on all of train; 100 steps train
    /// 770 examples in 0.8 s). Deterministic.
    pub fn train(features: &[Sparse], labels: &[usize], classes: usize, l2: f32) -> Self {
        let mut index = HashMap::new();
        for v in features {
            for &(f, _) in v {
                let next = index.len();
                index.entry(f).or_insert(next);
            }
        }
        let rows: Vec<Vec<(usize, f32)>> = features
            .iter()
            .map(|v| v.iter().map(|&(f, x)| (index[&f], x)).collect())
            .collect();
        let bias = index.len();
        let mut w = vec![0.0f32; (bias + 1) * classes];
        let n = features.len();
        if n == 0 || classes == 0 {
            return Self {
                index,
                weights: w,
                classes,
            };
        }
        let mut adam = Adam::new(w.len(), 0.1);
        let l2 = l2 / n as f32;
        let mut grad = vec![0.0f32; w.len()];
        let mut p = vec![0.0f32; classes];
        for _ in 0..100 {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (row, &label) in rows.iter().zip(labels) {
                p.copy_from_slice(&w[bias * classes..]);
                for &(f, x) in row {
                    for (pc, wc) in p.iter_mut().zip(&w[f * classes..(f + 1) * classes]) {
                        *pc += wc * x;
                    }
                }
                softmax(&mut p);
                p[label] -= 1.0;
                p.iter_mut().for_each(|v| *v /= n as f32);
                for &(f, x) in row {
                    for (gc, pc) in grad[f * classes..(f + 1) * classes].iter_mut().zip(&p) {
                        *gc += pc * x;
                    }
                }
                for (gc, pc) in grad[bias * classes..].iter_mut().zip(&p) {
                    *gc += pc;
                }
            }
            for (g, wv) in grad[..bias * classes].iter_mut().zip(&w) {
                *g += l2 * wv;
            }
            adam.update(&mut w, &grad);
        }
        Self {
            index,
            weights: w,
            classes,
        }
    }

    /// Class probabilities of a sparse TF-IDF vector.
    pub fn probabilities(&self, x: &Sparse) -> Vec<f32> {
        let classes = self.classes;
        let bias = self.index.len();
        let mut p = self.weights[bias * classes..(bias + 1) * classes].to_vec();
        for (f, v) in x {
            if let Some(&r) = self.index.get(f) {
                for (pc, wc) in p
                    .iter_mut()
                    .zip(&self.weights[r * classes..(r + 1) * classes])
                {
                    *pc += wc * v;
                }
            }
        }
        softmax(&mut p);
        p
    }
}

impl IntentRouter {
    /// Trains on `examples`; `keywords` are (intent, words) pairs. Intents are ordered as they
    /// first appear in the examples.
    pub fn train(
        embedder: &dyn Embedder,
        examples: &[Example],
        keywords: &[(String, Vec<String>)],
        config: RouterConfig,
    ) -> Self {
        let mut intents: Vec<String> = Vec::new();
        for e in examples {
            if !intents.contains(&e.intent) {
                intents.push(e.intent.clone());
            }
        }
        let index = |name: &str| intents.iter().position(|i| i == name);
        let embeddings: Vec<(usize, Vec<f32>)> = examples
            .iter()
            .map(|e| (index(&e.intent).unwrap_or(0), embedder.embed(&e.text)))
            .collect();
        let dims = embeddings.first().map_or(0, |(_, v)| v.len());
        let features: Vec<Vec<f32>> = embeddings.iter().map(|(_, v)| v.clone()).collect();
        let labels: Vec<usize> = embeddings.iter().map(|(c, _)| *c).collect();
        let weights = train_logistic(&features, &labels, intents.len(), config.l2, config.seed);
        let idf = Idf::fit(examples.iter().map(|e| e.text.as_str()));
        // Leave-one-out: how close each example is to the rest of its own intent.
        let lexical: Vec<(usize, Sparse)> = examples
            .iter()
            .map(|e| (index(&e.intent).unwrap_or(0), idf.vector(&e.text)))
            .collect();
        let mut per_intent = vec![0usize; intents.len()];
        labels.iter().for_each(|&c| per_intent[c] += 1);
        per_intent.sort_unstable();
        let many = per_intent
            .get(per_intent.len() / 2)
            .is_some_and(|&m| m >= config.many_examples);
        let lexical_classifier = many.then(|| {
            LexicalClassifier::train(
                &lexical.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
                &labels,
                intents.len(),
                config.l2,
            )
        });
        let sw = config.similarity_weight;
        let mut loo: Vec<f32> = embeddings
            .iter()
            .enumerate()
            .filter_map(|(i, (c, v))| {
                embeddings
                    .iter()
                    .enumerate()
                    .filter(|(j, (cj, _))| *j != i && cj == c)
                    .map(|(j, (_, u))| {
                        sw * dot(v, u) + (1.0 - sw) * cosine(&lexical[i].1, &lexical[j].1)
                    })
                    .fold(None, |m: Option<f32>, x| Some(m.map_or(x, |m| m.max(x))))
            })
            .collect();
        loo.sort_by(f32::total_cmp);
        let oos_threshold = if loo.is_empty() {
            0.0
        } else {
            loo[((loo.len() as f32 * config.oos_percentile) as usize).min(loo.len() - 1)]
        };
        let keywords = keywords
            .iter()
            .filter_map(|(intent, words)| {
                index(intent).map(|i| (i, words.iter().map(|w| w.to_lowercase()).collect()))
            })
            .collect();
        Self {
            intents,
            dims,
            weights,
            idf,
            lexical,
            lexical_classifier,
            embeddings,
            keywords,
            oos_threshold,
            config,
        }
    }

    pub fn intents(&self) -> &[String] {
        &self.intents
    }

    /// Combined probabilities per intent (same order as `intents`), and the nearest-example
    /// similarity, for `text` whose embedding is `e` (callers that also query the knowledge
    /// base embed once and pass it to both).
    pub fn scores(&self, e: &[f32], text: &str) -> (Vec<f32>, f32) {
        let classes = self.intents.len();
        if classes == 0 {
            return (Vec::new(), 0.0);
        }
        let x = e;
        let mut p_emb: Vec<f32> = self
            .weights
            .iter()
            .map(|w| dot(&w[..self.dims], x) + w[self.dims])
            .collect();
        softmax(&mut p_emb);
        let q = self.idf.vector(text);
        let (p_lex, w) = match &self.lexical_classifier {
            Some(classifier) => (
                classifier.probabilities(&q),
                self.config.many_embedding_weight,
            ),
            None => {
                let mut best = vec![0.0f32; classes];
                for (c, v) in &self.lexical {
                    best[*c] = best[*c].max(cosine(&q, v));
                }
                let mut p: Vec<f32> = best.iter().map(|v| v * 10.0).collect();
                softmax(&mut p);
                (p, self.config.embedding_weight)
            }
        };
        let mut p: Vec<f32> = p_emb
            .iter()
            .zip(&p_lex)
            .map(|(a, b)| w * a + (1.0 - w) * b)
            .collect();
        let lowered = super::lexical::words(text).join(" ");
        let padded = format!(" {lowered} ");
        for (c, words) in &self.keywords {
            if words.iter().any(|k| {
                padded.contains(&format!(" {k} "))
                    || (k.chars().any(super::lexical::is_cjk)
                        && lowered.replace(' ', "").contains(k.as_str()))
            }) {
                p[*c] += self.config.keyword_boost;
            }
        }
        let total: f32 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= total);
        let sw = self.config.similarity_weight;
        let nearest = self
            .embeddings
            .iter()
            .zip(&self.lexical)
            .map(|((_, v), (_, l))| sw * dot(v, e) + (1.0 - sw) * cosine(&q, l))
            .fold(f32::NEG_INFINITY, f32::max);
        (p, nearest)
    }

    /// The intent of `text`, or out of scope.
    pub fn classify(&self, embedder: &dyn Embedder, text: &str) -> IntentMatch {
        self.classify_embedded(&embedder.embed(text), text)
    }

    /// `classify` for a text already embedded as `e`.
    pub fn classify_embedded(&self, e: &[f32], text: &str) -> IntentMatch {
        let (p, nearest) = self.scores(e, text);
        let Some((best, &confidence)) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            return IntentMatch {
                intent: None,
                confidence: 0.0,
                best: String::new(),
                nearest: 0.0,
                out_of_scope: true,
            };
        };
        let out_of_scope = nearest < self.oos_threshold;
        IntentMatch {
            intent: (!out_of_scope).then(|| self.intents[best].clone()),
            confidence,
            best: self.intents[best].clone(),
            nearest,
            out_of_scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the texts it really embeds.
    struct Counting(std::sync::atomic::AtomicUsize);
    impl Embedder for Counting {
        fn embed(&self, text: &str) -> Vec<f32> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            BagOfWords.embed(text)
        }
    }

    #[test]
    fn the_cache_embeds_each_text_once_and_stays_bounded() {
        let counting = std::sync::Arc::new(Counting(Default::default()));
        let cached = CachedEmbedder::new(counting.clone(), 3);
        let runs = || counting.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            cached.embed("where is my order"),
            BagOfWords.embed("where is my order")
        );
        cached.embed("where is my order");
        cached.embed("refund");
        assert_eq!((runs(), cached.len()), (2, 2));
        cached.embed("a");
        cached.embed("b");
        assert_eq!(
            cached.len(),
            1,
            "cleared when full, then holds the new text"
        );
        assert_eq!(runs(), 4);
    }

    fn examples() -> Vec<Example> {
        let data = [
            (
                "order_status",
                [
                    "where is my order",
                    "track my order",
                    "has my order shipped",
                    "order status please",
                ],
            ),
            (
                "cancel_order",
                [
                    "cancel my order",
                    "i want to cancel the order",
                    "please cancel it",
                    "stop my order",
                ],
            ),
            (
                "agent",
                [
                    "talk to a person",
                    "i want a human",
                    "connect me to an agent",
                    "real person please",
                ],
            ),
        ];
        data.iter()
            .flat_map(|(i, ts)| {
                ts.iter().map(|t| Example {
                    intent: i.to_string(),
                    text: t.to_string(),
                })
            })
            .collect()
    }

    #[test]
    fn routes_paraphrases_and_misspellings_and_honours_keywords() {
        let r = IntentRouter::train(
            &BagOfWords,
            &examples(),
            &[("agent".into(), vec!["operator".into()])],
            RouterConfig::default(),
        );
        assert_eq!(r.intents(), ["order_status", "cancel_order", "agent"]);
        assert_eq!(
            r.classify(&BagOfWords, "where is my order now").best,
            "order_status"
        );
        // The lexical view alone reads through an ASR misspelling (character grams); the
        // word-level fake embedder cannot, which is what the lexical view is there for.
        let lexical = IntentRouter::train(
            &BagOfWords,
            &examples(),
            &[],
            RouterConfig {
                embedding_weight: 0.0,
                ..Default::default()
            },
        );
        assert_eq!(
            lexical.classify(&BagOfWords, "cancle my order").best,
            "cancel_order",
            "character grams"
        );
        assert_eq!(r.classify(&BagOfWords, "operator").best, "agent", "keyword");
    }

    #[test]
    fn unrelated_requests_are_out_of_scope() {
        let r = IntentRouter::train(&BagOfWords, &examples(), &[], RouterConfig::default());
        let m = r.classify(&BagOfWords, "what's the weather tomorrow");
        assert!(m.out_of_scope && m.intent.is_none(), "{m:?}");
        assert!(!r.classify(&BagOfWords, "track my order").out_of_scope);
    }

    #[test]
    fn the_lexical_classifier_takes_over_from_twenty_examples_per_intent() {
        // 20 phrasings per intent from templates: the lexical view becomes a classifier,
        // which learns which words tell the intents apart ("refund" vs "track").
        let mut many = Vec::new();
        for i in 0..20 {
            many.push(Example {
                intent: "refund".into(),
                text: format!("refund number {i} for my order please"),
            });
            many.push(Example {
                intent: "track".into(),
                text: format!("track number {i} for my order please"),
            });
        }
        let config = RouterConfig {
            embedding_weight: 0.0,
            many_embedding_weight: 0.0,
            ..Default::default()
        };
        let r = IntentRouter::train(&BagOfWords, &many, &[], config);
        assert!(r.lexical_classifier.is_some());
        let m = r.classify(&BagOfWords, "a refund on order 99 please");
        assert_eq!(m.best, "refund");
        assert!(m.confidence > 0.6, "{m:?}");
        let few = IntentRouter::train(&BagOfWords, &examples(), &[], config);
        assert!(
            few.lexical_classifier.is_none(),
            "four examples: nearest example"
        );
    }

    #[test]
    fn logistic_regression_separates_a_toy_problem_deterministically() {
        let features = vec![
            vec![1.0, 0.0],
            vec![0.9, 0.1],
            vec![0.0, 1.0],
            vec![0.1, 0.9],
        ];
        let labels = vec![0, 0, 1, 1];
        let w = train_logistic(&features, &labels, 2, 1e-4, 3);
        assert_eq!(
            w,
            train_logistic(&features, &labels, 2, 1e-4, 3),
            "same seed, same model"
        );
        let score = |x: &[f32], c: usize| dot(&w[c][..2], x) + w[c][2];
        assert!(score(&[1.0, 0.0], 0) > score(&[1.0, 0.0], 1));
        assert!(score(&[0.0, 1.0], 1) > score(&[0.0, 1.0], 0));
    }
}
