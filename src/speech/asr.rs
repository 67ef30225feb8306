//! Speech recognition behind a trait, so the call path and its tests do not care which engine runs.

use std::time::{Duration, Instant};

use super::SpeechError;

/// What the recognizer returns for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Recognised text, trimmed; empty when nothing was said.
    pub text: String,
    /// 0..1: mean probability of the text tokens; low values mean "probably misheard".
    pub confidence: f32,
    /// Where in the audio the text was heard.
    pub segments: Vec<Segment>,
    pub timings: AsrTimings,
    /// Which engine heard it ("whisper", "moonshine"), for records and metrics.
    pub engine: &'static str,
}

/// A stretch of recognised text with its position in the utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub text: String,
    pub start: Duration,
    pub end: Duration,
}

/// Where the time went, for the per-turn latency record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AsrTimings {
    /// Length of the audio recognised.
    pub audio: Duration,
    /// Time spent waiting for a free engine slot.
    pub queued: Duration,
    /// Time spent recognising (after the wait).
    pub processing: Duration,
}

impl AsrTimings {
    /// Processing time over audio time (lower is faster; 1.0 is real time).
    pub fn real_time_factor(&self) -> f64 {
        if self.audio.is_zero() {
            return 0.0;
        }
        self.processing.as_secs_f64() / self.audio.as_secs_f64()
    }
}

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct RecognizeOptions {
    /// Give up (error `Deadline`) if recognition has not finished by then, including queue time.
    pub deadline: Option<Instant>,
    /// Give up (error `Cancelled`) once this is set: a speculative recognition whose caller
    /// went on talking is dropped from the queue, or stopped if it already runs.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl RecognizeOptions {
    /// Whether the request was cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A speech recognizer: mono PCM in (8 or 16 kHz), text out. Implementations are shared between
/// calls (`Send + Sync`) and bound their own concurrency.
pub trait Recognizer: Send + Sync {
    /// Recognises one utterance. `samples` are in [-1, 1] at `sample_rate` (8000 or 16000).
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError>;

    /// A short name for logs and records ("whisper base beam5").
    fn describe(&self) -> String;

    /// Jobs running and waiting in the engine's queue (for load decisions and metrics).
    fn queue(&self) -> (usize, usize) {
        (0, 0)
    }
}

/// Checks what every recognizer requires of its input.
pub fn validate_input(samples: &[f32], sample_rate: u32) -> Result<(), SpeechError> {
    if sample_rate != 8_000 && sample_rate != 16_000 {
        return Err(SpeechError::UnsupportedRate(sample_rate));
    }
    if samples.is_empty() {
        return Err(SpeechError::EmptyAudio);
    }
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(SpeechError::InvalidAudio(
            "samples contain NaN or infinity".into(),
        ));
    }
    Ok(())
}
