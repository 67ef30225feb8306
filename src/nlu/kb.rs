//! The knowledge base: FAQ entries (id, question variants, answer) retrieved by meaning
//! (embedding cosine to the nearest variant) and surface (TF-IDF cosine), with the answer
//! text as evidence too, weighed the same way (a question worded like none of the variants
//! is often close to the answer: "until what time can I ring you" and the hours answer), a
//! threshold below which the answer is "none" rather than a guess, and the runner-up's score
//! so that two entries too close to call are not guessed between. Answers are read verbatim.

use super::intent::Embedder;
use super::lexical::{Idf, Sparse, cosine};
use super::minilm::dot;

/// One FAQ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// A few words naming the entry, for "do you mean X or Y?".
    pub topic: String,
    pub questions: Vec<String>,
    pub answer: String,
}

/// A match.
#[derive(Debug, Clone, PartialEq)]
pub struct KbMatch {
    pub id: String,
    pub score: f32,
    /// The best score of any other entry, and which entry that is.
    pub runner_up: f32,
    pub runner_up_id: String,
}

impl KbMatch {
    /// Whether the best entry is clearly ahead of the next one.
    pub fn clear(&self) -> bool {
        self.score - self.runner_up >= MARGIN
    }
}

/// How far the best entry must lead the next one to be answered: nearer than this, the
/// question is between two entries and a wrong answer is worse than asking again.
pub const MARGIN: f32 = 0.05;

/// The embedding weight from which the embedding model is taken to serve the language.
const TRUSTED_EMBEDDING: f32 = 0.7;

/// The indexed knowledge base.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    entries: Vec<Entry>,
    idf: Idf,
    /// (entry index, embedding, lexical vector) per question variant.
    variants: Vec<(usize, Vec<f32>, Sparse)>,
    /// Each entry's answer, embedded and as a lexical vector.
    answers: Vec<(Vec<f32>, Sparse)>,
    /// Each entry's topic, embedded.
    topics: Vec<Vec<f32>>,
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
        let answers = entries
            .iter()
            .map(|e| (embedder.embed(&e.answer), idf.vector(&e.answer)))
            .collect();
        let topics = entries.iter().map(|e| embedder.embed(&e.topic)).collect();
        Self {
            entries,
            idf,
            variants,
            answers,
            topics,
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

    /// `best` for a text already embedded as `e`: each entry scores its closest question
    /// variant (meaning and surface) or, if closer, its answer (meaning).
    pub fn best_embedded(&self, e: &[f32], text: &str) -> Option<KbMatch> {
        let scores = self.entry_scores(e, text);
        let (best, score) = scores
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let (second, runner_up) = scores
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((best, f32::MIN));
        Some(KbMatch {
            id: self.entries[best].id.clone(),
            score,
            runner_up,
            runner_up_id: self.entries[second].id.clone(),
        })
    }

    /// Every entry's score for `text` (embedded as `e`), in entry order.
    pub fn entry_scores(&self, e: &[f32], text: &str) -> Vec<f32> {
        let q = self.idf.vector(text);
        let w = self.embedding_weight;
        // An answer shares few words with the questions it answers, so where the embedding
        // serves the language it is scored by meaning alone (English: 20 of 31 paraphrases
        // found against 16 weighed like a variant); where it is weak (Mandarin on MiniLM,
        // whose embeddings of any two Chinese texts are close) the words carry it, as for
        // the variants.
        let mut scores: Vec<f32> = self
            .answers
            .iter()
            .map(|(emb, lex)| {
                if w >= TRUSTED_EMBEDDING {
                    dot(e, emb)
                } else {
                    w * dot(e, emb) + (1.0 - w) * cosine(&q, lex)
                }
            })
            .collect();
        for (i, emb, lex) in &self.variants {
            let s = w * dot(e, emb) + (1.0 - w) * cosine(&q, lex);
            scores[*i] = scores[*i].max(s);
        }
        scores
    }

    /// `entry_scores`, where an entry's topic counts too: how a reply to "do you mean X or
    /// Y?" is matched ("what it costs" against "what shipping costs").
    pub fn choice_scores(&self, e: &[f32], text: &str) -> Vec<f32> {
        self.entry_scores(e, text)
            .into_iter()
            .zip(&self.topics)
            .map(|(s, topic)| s.max(dot(e, topic)))
            .collect()
    }

    /// The entry that answers `text`, or None when nothing fits well enough.
    pub fn lookup(&self, embedder: &dyn Embedder, text: &str) -> Option<KbMatch> {
        self.best(embedder, text)
            .filter(|m| m.score >= self.threshold && m.clear())
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
                    topic: "our opening hours".into(),
                    questions: vec![
                        "what are your opening hours".into(),
                        "when are you open".into(),
                    ],
                    answer: "Eight to eight.".into(),
                },
                Entry {
                    id: "shipping_fee".into(),
                    topic: "shipping costs".into(),
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
