//! espeak-ng's own synthesiser as a `Synthesizer`: the voice of hotlines whose language has no
//! neural Piper voice in a package we can install (Mandarin: `voice: espeak:cmn-latn-pinyin`).
//! espeak-ng is formant synthesis: robotic, but every word in the language, ~20x faster than
//! real time on one core, and already linked (Piper's phonemiser).
//!
//! The text is spoken as written: the English number normalisation Piper's path applies
//! (`text::normalize`) would read 472198 as English words; espeak reads digits in the voice's
//! own language. Clauses split at Chinese and Latin punctuation.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::SpeechError;
use super::gate::JobGate;
use super::text::{CLAUSE_PAUSE_MS, Clause, SENTENCE_PAUSE_MS};
use super::tts::{OUTPUT_RATE, SpokenClause, SynthesisStats, Synthesizer, silence};
use crate::media::resample::resample;
use crate::media::wav::f32_to_i16;
use crate::models::paths::ModelPaths;

/// The prefix of a dialplan `voice:` that selects this synthesiser.
pub const VOICE_PREFIX: &str = "espeak:";

/// espeak-ng speaking one voice.
pub struct EspeakSynthesizer {
    data: PathBuf,
    voice: String,
    /// The shared core gate (one slot per synthesis: espeak runs on one thread).
    cores: Option<Arc<JobGate>>,
}

impl EspeakSynthesizer {
    /// The espeak-ng `voice` ("cmn-latn-pinyin"); fails if the data or the voice is missing.
    pub fn new(paths: &ModelPaths, voice: &str) -> Result<Self, SpeechError> {
        let data = paths.espeak_data_parent();
        // Selecting the voice checks it exists (and initialises espeak-ng once).
        super::espeak::synthesize(&data, voice, "")?;
        Ok(Self {
            data,
            voice: voice.to_string(),
            cores: None,
        })
    }

    pub fn with_shared_cores(mut self, cores: Arc<JobGate>) -> Self {
        self.cores = Some(cores);
        self
    }
}

/// Splits text into clauses at sentence and clause punctuation, Chinese (。！？；，、：) or
/// Latin; the last clause has no pause.
pub fn split_clauses(text: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        current.push(ch);
        let pause = match ch {
            '。' | '！' | '？' | '.' | '!' | '?' => SENTENCE_PAUSE_MS,
            '，' | '、' | '；' | '：' | ',' | ';' | ':' => CLAUSE_PAUSE_MS,
            _ => continue,
        };
        let piece = current.trim().to_string();
        current.clear();
        if piece.chars().any(char::is_alphanumeric) {
            clauses.push(Clause {
                text: piece,
                pause_ms: pause,
            });
        }
    }
    let rest = current.trim();
    if rest.chars().any(char::is_alphanumeric) {
        clauses.push(Clause {
            text: rest.to_string(),
            pause_ms: 0,
        });
    }
    if let Some(last) = clauses.last_mut() {
        last.pause_ms = 0;
    }
    clauses
}

/// Digit runs of five or more (order and phone numbers) written as Chinese digits, so they
/// are read one by one ("四七二一九八") as callers expect, not as a quantity
/// ("四十七万两千一百九十八"). Shorter numbers (days, amounts) stay quantities.
pub fn spell_long_numbers(text: &str) -> String {
    const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 5 {
            out.extend(
                run.chars()
                    .map(|d| DIGITS[d.to_digit(10).unwrap_or(0) as usize]),
            );
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

impl Synthesizer for EspeakSynthesizer {
    fn speak(
        &self,
        text: &str,
        on_clause: &mut dyn FnMut(SpokenClause) -> ControlFlow<()>,
    ) -> Result<SynthesisStats, SpeechError> {
        let started = Instant::now();
        let permit = match self.cores.as_deref() {
            Some(cores) => Some(cores.acquire(None)?),
            None => None,
        };
        let mut stats = SynthesisStats {
            queued: permit.as_ref().map(|p| p.waited).unwrap_or_default(),
            ..Default::default()
        };
        for clause in split_clauses(&spell_long_numbers(text)) {
            let t = Instant::now();
            let (pcm, rate) = super::espeak::synthesize(&self.data, &self.voice, &clause.text)?;
            let floats: Vec<f32> = pcm.iter().map(|s| f32::from(*s) / 32768.0).collect();
            let mut pcm: Vec<i16> = resample(&floats, rate, OUTPUT_RATE)?
                .into_iter()
                .map(f32_to_i16)
                .collect();
            pcm.extend(silence(clause.pause_ms));
            stats.add_clause(pcm.len(), started.elapsed());
            let spoken = SpokenClause {
                text: clause.text,
                pcm,
                synthesis_time: t.elapsed(),
            };
            if on_clause(spoken).is_break() {
                break;
            }
        }
        drop(permit);
        stats.total = started.elapsed();
        Ok(stats)
    }

    fn describe(&self) -> String {
        format!("espeak-ng {}", self.voice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_split_at_chinese_and_latin_punctuation() {
        let c = split_clauses("您好，欢迎致电网店客服。请问有什么可以帮您？好的");
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "您好，",
                "欢迎致电网店客服。",
                "请问有什么可以帮您？",
                "好的"
            ]
        );
        assert_eq!(c[0].pause_ms, CLAUSE_PAUSE_MS);
        assert_eq!(c[1].pause_ms, SENTENCE_PAUSE_MS);
        assert_eq!(c[3].pause_ms, 0);
        assert!(split_clauses("。，").is_empty());
        assert_eq!(split_clauses("订单472198。")[0].text, "订单472198。");
    }

    #[test]
    fn long_numbers_are_read_digit_by_digit() {
        assert_eq!(
            spell_long_numbers("订单472198已发货"),
            "订单四七二一九八已发货"
        );
        assert_eq!(
            spell_long_numbers("三十天，30天，1000元"),
            "三十天，30天，1000元"
        );
        assert_eq!(spell_long_numbers("10203"), "一零二零三");
    }
}
