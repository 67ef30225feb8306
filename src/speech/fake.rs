//! Deterministic stand-ins for the real engines, behind the same traits, for fast tests of the
//! logic around speech (turn handling, streaming, degradation) without loading models.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::asr::{AsrTimings, RecognizeOptions, Recognizer, Segment, Transcript, validate_input};
use super::tts::{OUTPUT_RATE, SpokenClause, SynthesisStats, Synthesizer, silence};
use super::{SpeechError, text};

/// What the fake recognizer does for the next utterance.
#[derive(Debug, Clone)]
pub enum FakeHeard {
    /// Returns this text with this confidence.
    Text(String, f32),
    /// Fails like a broken engine.
    Fail(String),
}

/// Returns scripted transcripts in order (then empty text), optionally after a delay, honouring
/// deadlines like the real engine.
#[derive(Debug, Default)]
pub struct FakeRecognizer {
    script: Mutex<VecDeque<FakeHeard>>,
    latency: Duration,
}

impl FakeRecognizer {
    pub fn new(script: impl IntoIterator<Item = FakeHeard>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            latency: Duration::ZERO,
        }
    }

    /// Hears each text in turn with confidence 0.9.
    pub fn hearing(texts: &[&str]) -> Self {
        Self::new(texts.iter().map(|t| FakeHeard::Text(t.to_string(), 0.9)))
    }

    /// Takes this long per utterance (to test slow-ASR handling).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
}

impl Recognizer for FakeRecognizer {
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError> {
        validate_input(samples, sample_rate)?;
        let started = Instant::now();
        let next = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        let finish = started + self.latency;
        let stop = options.deadline.map_or(finish, |d| d.min(finish));
        std::thread::sleep(stop.saturating_duration_since(Instant::now()));
        if options.deadline.is_some_and(|d| d < finish) {
            return Err(SpeechError::Deadline);
        }
        let audio = Duration::from_secs_f64(samples.len() as f64 / sample_rate as f64);
        let (text, confidence) = match next {
            Some(FakeHeard::Text(t, c)) => (t, c),
            Some(FakeHeard::Fail(why)) => return Err(SpeechError::Engine(why)),
            None => (String::new(), 0.0),
        };
        Ok(Transcript {
            segments: vec![Segment {
                text: text.clone(),
                start: Duration::ZERO,
                end: audio,
            }],
            text,
            confidence,
            timings: AsrTimings {
                audio,
                queued: Duration::ZERO,
                processing: started.elapsed(),
            },
            engine: "fake",
        })
    }

    fn describe(&self) -> String {
        "fake recognizer".into()
    }
}

/// Speaks every clause as a tone whose length follows the word count (60 ms per character,
/// like a slow talker), with the same normalisation, clause split and pauses as the real voice.
#[derive(Debug, Default)]
pub struct FakeSynthesizer {
    /// Fail every request with this message (to test degradation).
    pub fail_with: Option<String>,
}

impl FakeSynthesizer {
    /// Milliseconds of tone per character of clause text.
    pub const MS_PER_CHAR: usize = 60;
}

impl Synthesizer for FakeSynthesizer {
    fn speak(
        &self,
        text: &str,
        on_clause: &mut dyn FnMut(SpokenClause) -> ControlFlow<()>,
    ) -> Result<SynthesisStats, SpeechError> {
        if let Some(why) = &self.fail_with {
            return Err(SpeechError::Engine(why.clone()));
        }
        let started = Instant::now();
        let mut stats = SynthesisStats::default();
        for clause in text::split_clauses(&text::normalize(text)) {
            let n = OUTPUT_RATE as usize * Self::MS_PER_CHAR * clause.text.chars().count() / 1000;
            let mut pcm: Vec<i16> = (0..n)
                .map(|i| {
                    ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / OUTPUT_RATE as f32).sin()
                        * 8000.0) as i16
                })
                .collect();
            pcm.extend(silence(clause.pause_ms));
            stats.add_clause(pcm.len(), started.elapsed());
            let spoken = SpokenClause {
                text: clause.text,
                pcm,
                synthesis_time: Duration::ZERO,
            };
            if on_clause(spoken).is_break() {
                break;
            }
        }
        stats.total = started.elapsed();
        Ok(stats)
    }

    fn describe(&self) -> String {
        "fake synthesizer".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_recognizer_follows_its_script_and_deadlines() {
        let r = FakeRecognizer::new([
            FakeHeard::Text("order status".into(), 0.8),
            FakeHeard::Fail("boom".into()),
        ]);
        let audio = vec![0.0; 8000];
        let t = r
            .recognize(&audio, 8000, &RecognizeOptions::default())
            .unwrap();
        assert_eq!((t.text.as_str(), t.confidence), ("order status", 0.8));
        assert_eq!(t.timings.audio, Duration::from_secs(1));
        assert!(matches!(
            r.recognize(&audio, 8000, &RecognizeOptions::default()),
            Err(SpeechError::Engine(_))
        ));
        assert_eq!(
            r.recognize(&audio, 8000, &RecognizeOptions::default())
                .unwrap()
                .text,
            ""
        );
        assert!(matches!(
            r.recognize(&[], 8000, &RecognizeOptions::default()),
            Err(SpeechError::EmptyAudio)
        ));
        assert!(matches!(
            r.recognize(&audio, 44_100, &RecognizeOptions::default()),
            Err(SpeechError::UnsupportedRate(44_100))
        ));

        let slow = FakeRecognizer::hearing(&["hi"]).with_latency(Duration::from_secs(5));
        let opts = RecognizeOptions {
            deadline: Some(Instant::now() + Duration::from_millis(10)),
            ..Default::default()
        };
        assert!(matches!(
            slow.recognize(&audio, 8000, &opts),
            Err(SpeechError::Deadline)
        ));
    }

    #[test]
    fn fake_synthesizer_streams_clauses_and_stops_on_break() {
        let s = FakeSynthesizer::default();
        let mut got = Vec::new();
        let stats = s
            .speak(
                "Your order has shipped. It arrives on the 3rd, by 5:00 pm.",
                &mut |c| {
                    got.push(c.text);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(
            got,
            vec![
                "Your order has shipped.",
                "It arrives on the third,",
                "by five p m."
            ]
        );
        assert_eq!(stats.clauses, 3);
        let mut first_only = 0;
        s.speak("One two three. Four five six.", &mut |_| {
            first_only += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(first_only, 1);
        let failing = FakeSynthesizer {
            fail_with: Some("down".into()),
        };
        assert!(failing.speak_all("hello").is_err());
    }
}
