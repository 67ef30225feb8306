//! Frustration from wording: explicit anger or complaint words, insults, shouting (capitals,
//! exclamation marks), in English and Mandarin. Repetition (the same request again, failed
//! turns) is counted by the engine, which sees the whole call.

use super::lexical::words;

/// How upset an utterance sounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentiment {
    /// 0 (calm) to 1 (angry).
    pub score: f32,
    /// The words or signs that raised it.
    pub cues: Vec<String>,
}

const ANGRY: &[&str] = &[
    "angry",
    "furious",
    "ridiculous",
    "unacceptable",
    "terrible",
    "awful",
    "useless",
    "stupid",
    "worst",
    "pathetic",
    "disgusting",
    "outrageous",
    "scam",
    "hate",
    "damn",
    "hell",
    "idiot",
    "idiots",
    "nonsense",
    "incompetent",
    "complaint",
    "complain",
    "sue",
    "lawyer",
    "shit",
    "crap",
    "fed",
    "sick",
    "annoyed",
    "frustrated",
    "frustrating",
    "upset",
    "livid",
];
const ANGRY_ZH: &[&str] = &[
    "生气",
    "投诉",
    "垃圾",
    "太差",
    "气死",
    "什么破",
    "骗子",
    "烦死",
];

/// Scores one utterance.
pub fn score(text: &str) -> Sentiment {
    let mut cues = Vec::new();
    for w in words(text) {
        if ANGRY.contains(&w.as_str()) {
            cues.push(w);
        }
    }
    for z in ANGRY_ZH {
        if text.contains(z) {
            cues.push(z.to_string());
        }
    }
    let shouted = text
        .split_whitespace()
        .filter(|w| {
            w.len() >= 3
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || !c.is_alphabetic())
                && w.chars().any(|c| c.is_ascii_uppercase())
        })
        .count();
    if shouted >= 2 {
        cues.push("shouting".into());
    }
    if text.matches('!').count() >= 2 {
        cues.push("!!".into());
    }
    let score = (cues.len() as f32 * 0.4).min(1.0);
    Sentiment { score, cues }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calm_and_angry() {
        assert_eq!(score("where is my order please").score, 0.0);
        assert!(score("this is ridiculous, your service is useless").score >= 0.8);
        assert!(score("I AM VERY ANGRY!!").score >= 0.8);
        assert!(score("我要投诉，太差了").score >= 0.8);
    }
}
