//! Speech engines behind traits: `Recognizer` (ASR) and `Synthesizer` (TTS), with the whisper.cpp
//! and Piper implementations, text preparation for the voice, and fake engines for tests.
//!
//! Both real engines are shared pools with a bounded queue (`gate::JobGate`) in front, so the
//! number of engine threads never exceeds the cores given to them (`CoreBudget`).

pub mod asr;
pub mod espeak;
pub mod espeak_voice;
pub mod fake;
pub mod fault;
pub mod gate;
pub mod moonshine;
pub mod overflow;
pub mod piper;
pub mod text;
pub mod tts;
pub mod turn_models;
pub mod whisper;

use std::path::PathBuf;

pub use asr::{RecognizeOptions, Recognizer, Transcript};
pub use moonshine::MoonshineRecognizer;
pub use overflow::OverflowRecognizer;
pub use piper::{PiperConfig, PiperSynthesizer};
pub use tts::{SpokenClause, Synthesizer};
pub use whisper::{WhisperConfig, WhisperRecognizer};

/// Why speech could not be recognised or synthesised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpeechError {
    /// A model file is not installed.
    #[error("{0} is missing; run `voxnav models install`")]
    ModelMissing(PathBuf),
    /// The audio has no samples.
    #[error("the audio is empty")]
    EmptyAudio,
    /// The audio is not at a rate the recognizer takes.
    #[error("sample rate {0} Hz is not supported; use 8000 or 16000 Hz")]
    UnsupportedRate(u32),
    /// The samples cannot be used.
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    /// A setting is wrong.
    #[error("speech configuration: {0}")]
    Config(String),
    /// The engine failed.
    #[error("speech engine failed: {0}")]
    Engine(String),
    /// The request's deadline passed.
    #[error("speech deadline passed")]
    Deadline,
    /// The request was cancelled (nobody needs its result any more).
    #[error("cancelled")]
    Cancelled,
    /// The engine's queue refused the request or it waited past its deadline.
    #[error(transparent)]
    Busy(#[from] gate::GateError),
    /// Resampling failed.
    #[error(transparent)]
    Resample(#[from] crate::media::resample::ResampleError),
}

/// The synthesiser for a dialplan's `voice:`: `espeak:NAME` is espeak-ng's synthesiser with
/// that voice; anything else is the installed Piper voice with `piper` settings. `cores`: the
/// shared core gate its jobs take slots from (None: unshared, the test caller and `say`).
pub fn synthesizer_for(
    paths: &crate::models::ModelPaths,
    voice: &str,
    piper: PiperConfig,
    cores: Option<std::sync::Arc<gate::JobGate>>,
) -> Result<std::sync::Arc<dyn Synthesizer>, SpeechError> {
    Ok(match voice.strip_prefix(espeak_voice::VOICE_PREFIX) {
        Some(name) => {
            let s = espeak_voice::EspeakSynthesizer::new(paths, name)?;
            std::sync::Arc::new(match cores {
                Some(c) => s.with_shared_cores(c),
                None => s,
            })
        }
        None => {
            let s = PiperSynthesizer::new(paths, piper)?;
            std::sync::Arc::new(match cores {
                Some(c) => s.with_shared_cores(c),
                None => s,
            })
        }
    })
}

/// How the cores are shared between the engines: ASR threads plus TTS threads must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreBudget {
    pub cores: usize,
}

impl CoreBudget {
    /// The cores this process may use.
    pub fn detect() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// With one gate of `cores` slots shared by every engine (`JobGate`, held per thread a
    /// job runs), jobs may outnumber the cores: they queue for slots. What must fit is one
    /// job of each engine.
    pub fn check_shared(&self, asr: &WhisperConfig, tts: &PiperConfig) -> Result<(), SpeechError> {
        if asr.threads_per_job > self.cores || tts.threads_per_job > self.cores {
            return Err(SpeechError::Config(format!(
                "a job of {} ASR or {} TTS threads cannot run on {} cores",
                asr.threads_per_job, tts.threads_per_job, self.cores
            )));
        }
        Ok(())
    }

    /// Refuses a configuration whose engines together would run more threads than cores.
    pub fn check(&self, asr: &WhisperConfig, tts: &PiperConfig) -> Result<(), SpeechError> {
        let asr_threads = asr.jobs * asr.threads_per_job;
        let tts_threads = tts.jobs * tts.threads_per_job;
        if asr_threads + tts_threads > self.cores {
            return Err(SpeechError::Config(format!(
                "ASR {}x{} + TTS {}x{} threads exceed {} cores; lower jobs or threads",
                asr.jobs, asr.threads_per_job, tts.jobs, tts.threads_per_job, self.cores
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_oversubscription() {
        let two = CoreBudget { cores: 2 };
        assert!(
            two.check(&WhisperConfig::default(), &PiperConfig::default())
                .is_ok()
        );
        let greedy = WhisperConfig {
            threads_per_job: 2,
            ..Default::default()
        };
        let err = two.check(&greedy, &PiperConfig::default()).unwrap_err();
        assert!(err.to_string().contains("exceed 2 cores"), "{err}");
    }
}
