//! The knowledge base: FAQ entries (id, question variants, answer) retrieved by meaning
//! (embedding cosine to the nearest variant) and surface (TF-IDF cosine), with a threshold
//! below which the answer is "none" rather than a guess. Answers are read verbatim.

use super::intent::Embedder;
use super::lexical::{Idf, Sparse, cosine};
use super::minilm::dot;

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub questions: Vec<String>,
    pub answer: String,
}

/// A match.
#[derive(Debug, Clone, PartialEq)]
pub struct KbMatch {
    pub id: String,
    pub score: f32,
}

/// The indexed knowledge base.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    entries: Vec<Entry>,
    idf: Idf,
    /// (entry index, embedding, lexical vector) per question variant.
    variants: Vec<(usize, Vec<f32>, Sparse)>,
    pub threshold: f32,
    /// Weight of meaning (embedding) against surface (TF-IDF) in the score.
    pub embedding_weight: f32,
}

impl KnowledgeBase {
    /// `embedding_weight`: 0.8 suits English with MiniLM; lower it where the embedding model
    /// is weak for the language.
    pub fn build(
        embedder: &dyn Embedder,
        entries: Vec<Entry>,
        threshold: f32,
        embedding_weight: f32,
    ) -> Self {
        let idf = Idf::fit(
            entries
                .iter()
                .flat_map(|e| e.questions.iter().map(String::as_str)),
        );
        let variants = entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let idf = &idf;
                e.questions
                    .iter()
                    .map(move |q| (i, embedder.embed(q), idf.vector(q)))
            })
            .collect();
        Self {
            entries,
            idf,
            variants,
            threshold,
            embedding_weight,
        }
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The best entry and its score, whether or not it passes the threshold.
    pub fn best(&self, embedder: &dyn Embedder, text: &str) -> Option<KbMatch> {
        self.best_embedded(&embedder.embed(text), text)
    }

    /// `best` for a text already embedded as `e`.
    pub fn best_embedded(&self, e: &[f32], text: &str) -> Option<KbMatch> {
        let q = self.idf.vector(text);
        let mut best: Option<(usize, f32)> = None;
        for (i, emb, lex) in &self.variants {
            let w = self.embedding_weight;
            let s = w * dot(e, emb) + (1.0 - w) * cosine(&q, lex);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((*i, s));
            }
        }
        best.map(|(i, score)| KbMatch {
            id: self.entries[i].id.clone(),
            score,
        })
    }

    /// The entry that answers `text`, or None when nothing fits well enough.
    pub fn lookup(&self, embedder: &dyn Embedder, text: &str) -> Option<KbMatch> {
        self.best(embedder, text)
            .filter(|m| m.score >= self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::intent::BagOfWords;

    #[test]
    fn finds_the_entry_or_none() {
        let kb = KnowledgeBase::build(
            &BagOfWords,
            vec![
                Entry {
                    id: "service_hours".into(),
                    questions: vec![
                        "what are your opening hours".into(),
                        "when are you open".into(),
                    ],
                    answer: "Eight to eight.".into(),
                },
                Entry {
                    id: "shipping_fee".into(),
                    questions: vec![
                        "how much is shipping".into(),
                        "what does delivery cost".into(),
                    ],
                    answer: "Free over fifty.".into(),
                },
            ],
            0.4,
            0.8,
        );
        assert_eq!(
            kb.lookup(&BagOfWords, "when are you open today")
                .unwrap()
                .id,
            "service_hours"
        );
        assert_eq!(
            kb.lookup(&BagOfWords, "how much does shipping cost")
                .unwrap()
                .id,
            "shipping_fee"
        );
        assert!(kb.lookup(&BagOfWords, "tell me a joke").is_none());
        assert_eq!(kb.entry("shipping_fee").unwrap().answer, "Free over fifty.");
    }
}
