//! Speech synthesis behind a trait: text in, 8 kHz PCM out, clause by clause, so the call path
//! can start playing the first clause while later ones are still being synthesised.

use std::ops::ControlFlow;
use std::time::Duration;

use super::SpeechError;

/// Telephone audio rate every synthesizer delivers.
pub const OUTPUT_RATE: u32 = 8_000;

/// One synthesised clause: its speech followed by the pause its punctuation calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenClause {
    /// The normalised text that was spoken.
    pub text: String,
    /// 16-bit PCM at `OUTPUT_RATE`, trailing pause included.
    pub pcm: Vec<i16>,
    /// How long synthesising this clause took.
    pub synthesis_time: Duration,
}

/// Totals for one `speak` call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SynthesisStats {
    pub clauses: usize,
    /// Audio produced (including pauses).
    pub audio: Duration,
    /// From the call to the first clause being handed over.
    pub first_audio: Duration,
    /// From the call to the end.
    pub total: Duration,
    /// Time spent waiting for a free engine slot.
    pub queued: Duration,
}

impl SynthesisStats {
    /// Counts one clause of `samples` at the output rate, ready `since_start` after the call.
    pub fn add_clause(&mut self, samples: usize, since_start: Duration) {
        self.clauses += 1;
        self.audio += Duration::from_secs_f64(samples as f64 / OUTPUT_RATE as f64);
        if self.clauses == 1 {
            self.first_audio = since_start;
        }
    }
}

/// A speech synthesizer shared between calls.
pub trait Synthesizer: Send + Sync {
    /// Speaks `text`, handing each clause to `on_clause` as soon as it is ready. Returning
    /// `ControlFlow::Break` stops synthesis (the caller barged in, the call ended).
    fn speak(
        &self,
        text: &str,
        on_clause: &mut dyn FnMut(SpokenClause) -> ControlFlow<()>,
    ) -> Result<SynthesisStats, SpeechError>;

    /// A short name for logs and records.
    fn describe(&self) -> String;

    /// Speaks `text` into one buffer (prompt caches, `voxnav say`).
    fn speak_all(&self, text: &str) -> Result<Vec<i16>, SpeechError> {
        Ok(self.speak_with_stats(text)?.0)
    }

    /// Speaks `text` into one buffer and reports how long it took.
    fn speak_with_stats(&self, text: &str) -> Result<(Vec<i16>, SynthesisStats), SpeechError> {
        let mut pcm = Vec::new();
        let stats = self.speak(text, &mut |clause| {
            pcm.extend_from_slice(&clause.pcm);
            ControlFlow::Continue(())
        })?;
        Ok((pcm, stats))
    }
}

/// Samples of silence for `ms` milliseconds at the output rate.
pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; (OUTPUT_RATE as usize * ms as usize) / 1000]
}
