//! Lexical features: hashed TF-IDF vectors of word unigrams and bigrams plus character 3-5
//! grams (within word boundaries for spaced languages; over the raw string for Chinese,
//! which has no spaces, so the same code is the character-level path for Mandarin). Character
//! grams make the router tolerant of ASR misspellings ("cancle", "refnd").

use std::collections::HashMap;

/// Hash space for features (collisions are rare at this size for short utterances).
const DIMS: u32 = 1 << 20;

/// A sparse vector: sorted (feature, weight), L2-normalised.
pub type Sparse = Vec<(u32, f32)>;

fn hash(kind: u8, text: &str) -> u32 {
    // FNV-1a: stable across runs and platforms (the model is rebuilt at load, but tests
    // compare numbers).
    let mut h: u32 = 0x811C_9DC5 ^ kind as u32;
    for b in text.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % DIMS
}

/// Lower-cased words: letters, digits and apostrophes; each CJK character is its own word.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() && !is_cjk(c) || c == '\'' {
            current.push(c);
        } else {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            if is_cjk(c) {
                out.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF)
}

/// Raw term counts of an utterance.
fn terms(text: &str) -> HashMap<u32, f32> {
    let mut counts = HashMap::new();
    let ws = words(text);
    for w in &ws {
        *counts.entry(hash(1, w)).or_insert(0.0) += 1.0;
    }
    for pair in ws.windows(2) {
        *counts
            .entry(hash(2, &format!("{} {}", pair[0], pair[1])))
            .or_insert(0.0) += 1.0;
    }
    // Character n-grams of each word with boundary marks ("<cancel>"); for CJK the words are
    // single characters, so grams run over the joined string instead.
    let joined: String = ws
        .iter()
        .filter(|w| w.chars().all(is_cjk))
        .map(String::as_str)
        .collect();
    let mut grams = |s: &str| {
        let chars: Vec<char> = s.chars().collect();
        for n in 3..=5 {
            for g in chars.windows(n) {
                let g: String = g.iter().collect();
                *counts.entry(hash(3, &g)).or_insert(0.0) += 0.5;
            }
        }
    };
    for w in ws.iter().filter(|w| !w.chars().all(is_cjk)) {
        grams(&format!("<{w}>"));
    }
    if !joined.is_empty() {
        let chars: Vec<char> = joined.chars().collect();
        for n in 2..=3 {
            for g in chars.windows(n) {
                let g: String = g.iter().collect();
                *counts.entry(hash(3, &g)).or_insert(0.0) += 1.0;
            }
        }
    }
    counts
}

/// Inverse document frequencies learned from a set of texts.
#[derive(Debug, Clone, Default)]
pub struct Idf {
    idf: HashMap<u32, f32>,
    unseen: f32,
}

impl Idf {
    pub fn fit<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut df: HashMap<u32, f32> = HashMap::new();
        let mut n = 0.0f32;
        for t in texts {
            n += 1.0;
            for f in terms(t).into_keys() {
                *df.entry(f).or_insert(0.0) += 1.0;
            }
        }
        let idf = df
            .into_iter()
            .map(|(f, d)| (f, ((1.0 + n) / (1.0 + d)).ln() + 1.0))
            .collect();
        Self {
            idf,
            unseen: (1.0 + n).ln() + 1.0,
        }
    }

    /// The L2-normalised TF-IDF vector (sublinear tf).
    pub fn vector(&self, text: &str) -> Sparse {
        let mut v: Sparse = terms(text)
            .into_iter()
            .map(|(f, c)| {
                (
                    f,
                    (1.0 + c.ln()) * self.idf.get(&f).copied().unwrap_or(self.unseen),
                )
            })
            .collect();
        v.sort_unstable_by_key(|&(f, _)| f);
        let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|(_, w)| *w /= norm);
        }
        v
    }
}

/// Cosine of two normalised sparse vectors.
pub fn cosine(a: &Sparse, b: &Sparse) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_similarity_tolerate_misspellings() {
        assert_eq!(
            words("I'd like to CANCEL, order #4721!"),
            vec!["i'd", "like", "to", "cancel", "order", "4721"]
        );
        assert_eq!(words("我要退款"), vec!["我", "要", "退", "款"]);
        let idf = Idf::fit(["cancel my order", "where is my order", "refund please"]);
        let q = idf.vector("cancle my order");
        let cancel = idf.vector("cancel my order");
        let status = idf.vector("where is my order");
        assert!(cosine(&q, &cancel) > cosine(&q, &status));
        assert!((cosine(&cancel, &cancel) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn chinese_uses_character_grams() {
        let idf = Idf::fit(["我要退款", "我的订单在哪里"]);
        let q = idf.vector("我想退款");
        assert!(cosine(&q, &idf.vector("我要退款")) > cosine(&q, &idf.vector("我的订单在哪里")));
    }
}
