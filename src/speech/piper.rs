//! Piper (piper-rs on ONNX Runtime) as a `Synthesizer`.
//!
//! Per reply: normalise numbers (`text::normalize`), split into clauses, and for each clause
//! phonemise under the process-wide espeak lock, run the voice, resample 22.05 kHz -> 8 kHz with a
//! band-limited resampler, append the clause's pause and hand it over. The first clause reaches the
//! caller while the rest are still being synthesised.
//!
//! A `Piper` instance takes `&mut self`, so a pool holds `jobs` instances (~250 MB each) behind a
//! `JobGate`. ONNX Runtime is loaded from the models directory at run time (`load-dynamic`), with
//! its version checked first: a wrong library makes `ort` hang instead of failing.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use ort::session::Session;
use piper_rs::{ModelConfig, Piper};

use super::gate::JobGate;
use super::tts::{OUTPUT_RATE, SpokenClause, SynthesisStats, Synthesizer, silence};
use super::{SpeechError, espeak, text};
use crate::media::resample::resample;
use crate::media::wav::f32_to_i16;
use crate::models::paths::{ModelPaths, ONNXRUNTIME_VERSION};

/// How the synthesizer is set up.
#[derive(Debug, Clone)]
pub struct PiperConfig {
    /// Voice ONNX file and its JSON config; default: the installed `en_US-joe-medium`.
    pub voice: Option<(PathBuf, PathBuf)>,
    /// Voice instances (concurrent syntheses).
    pub jobs: usize,
    /// ONNX Runtime intra-op threads per instance.
    pub threads_per_job: usize,
    /// Syntheses that may wait for an instance before new ones are refused.
    pub max_queue: usize,
    /// Speaking rate: >1 slower, <1 faster (Piper's `length_scale`).
    pub length_scale: Option<f32>,
    /// Variation in the voice (Piper's `noise_scale`, `noise_w`); `Some(0.0)` for both makes
    /// synthesis deterministic (tests, cached prompts that must not change between loads).
    pub noise_scale: Option<f32>,
    pub noise_w: Option<f32>,
}

impl Default for PiperConfig {
    fn default() -> Self {
        Self {
            voice: None,
            jobs: 1,
            threads_per_job: 1,
            max_queue: 64,
            length_scale: None,
            noise_scale: None,
            noise_w: None,
        }
    }
}

/// The Piper synthesizer pool.
pub struct PiperSynthesizer {
    voices: Mutex<Vec<Piper>>,
    gate: JobGate,
    /// The process's cores, shared with ASR (see `WhisperRecognizer::with_shared_cores`).
    cores: Option<std::sync::Arc<JobGate>>,
    espeak_voice: String,
    voice_rate: u32,
    espeak_data: PathBuf,
    config: PiperConfig,
}

/// Loads ONNX Runtime from the models directory once per process.
pub(crate) fn init_onnxruntime(lib: &Path) -> Result<(), SpeechError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        let bytes = std::fs::read(lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        // The library exports symbols versioned `VERS_<version>`; check before ort loads it.
        let tag = format!("VERS_{ONNXRUNTIME_VERSION}");
        if !bytes.windows(tag.len()).any(|w| w == tag.as_bytes()) {
            return Err(format!(
                "{} is not ONNX Runtime {ONNXRUNTIME_VERSION}; run `voxnav models install`",
                lib.display()
            ));
        }
        drop(bytes);
        let builder = ort::init_from(lib).map_err(|e| format!("loading {}: {e}", lib.display()))?;
        builder.with_name("voxnav").commit();
        Ok(())
    })
    .clone()
    .map_err(SpeechError::Engine)
}

impl PiperSynthesizer {
    /// Loads `config.jobs` voice instances. Fails with `ModelMissing` if models are not installed.
    pub fn new(paths: &ModelPaths, config: PiperConfig) -> Result<Self, SpeechError> {
        if config.jobs == 0 || config.threads_per_job == 0 {
            return Err(SpeechError::Config(
                "jobs and threads_per_job must be at least 1".into(),
            ));
        }
        let (onnx, json) = config.voice.clone().unwrap_or_else(|| paths.piper_voice());
        for file in [&onnx, &json, &paths.onnxruntime_lib()] {
            if !file.exists() {
                return Err(SpeechError::ModelMissing(file.clone()));
            }
        }
        init_onnxruntime(&paths.onnxruntime_lib())?;
        let read_config = || -> Result<ModelConfig, SpeechError> {
            let file = std::fs::File::open(&json)
                .map_err(|e| SpeechError::Engine(format!("{}: {e}", json.display())))?;
            serde_json::from_reader(std::io::BufReader::new(file))
                .map_err(|e| SpeechError::Config(format!("{}: {e}", json.display())))
        };
        let first = read_config()?;
        let (espeak_voice, voice_rate) = (first.espeak.voice.clone(), first.audio.sample_rate);
        let mut voices = Vec::with_capacity(config.jobs);
        for i in 0..config.jobs {
            let model_config = if i == 0 { None } else { Some(read_config()?) };
            let options = |e: String| SpeechError::Engine(format!("ONNX session options: {e}"));
            let builder = Session::builder().map_err(|e| options(e.to_string()))?;
            // One option at a time: ort's error type is large, so no closure chain.
            let builder = builder
                .with_intra_threads(config.threads_per_job)
                .map_err(|e| options(e.to_string()))?;
            let builder = builder
                .with_inter_threads(1)
                .map_err(|e| options(e.to_string()))?;
            // Spinning worker threads would steal the cores whisper needs.
            let builder = builder
                .with_intra_op_spinning(false)
                .map_err(|e| options(e.to_string()))?;
            let mut builder = builder;
            let session = builder
                .commit_from_file(&onnx)
                .map_err(|e| SpeechError::Engine(format!("loading {}: {e}", onnx.display())))?;
            voices.push((session, model_config));
        }
        let mut first = Some(first);
        let voices = voices
            .into_iter()
            .map(|(session, cfg)| {
                let cfg = cfg.or_else(|| first.take()).expect("one config per voice");
                Piper::from_session(session, cfg)
            })
            .collect();
        Ok(Self {
            voices: Mutex::new(voices),
            gate: JobGate::new(config.jobs, config.max_queue),
            cores: None,
            espeak_voice,
            voice_rate,
            espeak_data: paths.espeak_data_parent(),
            config,
        })
    }

    /// Shares the cores with ASR: a synthesis holds one per thread while it runs.
    pub fn with_shared_cores(mut self, cores: std::sync::Arc<JobGate>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Running and waiting syntheses (for metrics).
    pub fn load(&self) -> (usize, usize) {
        self.gate.load()
    }

    fn synthesize_clause(
        &self,
        voice: &mut Piper,
        clause: &text::Clause,
    ) -> Result<Vec<i16>, SpeechError> {
        let phonemes = espeak::phonemize(&self.espeak_data, &self.espeak_voice, &clause.text)?;
        let mut pcm = if phonemes.trim().is_empty() {
            Vec::new()
        } else {
            let (audio, rate) = voice
                .create(
                    &phonemes,
                    true,
                    None,
                    self.config.length_scale,
                    self.config.noise_scale,
                    self.config.noise_w,
                )
                .map_err(|e| SpeechError::Engine(format!("piper: {e}")))?;
            resample(&audio, rate, OUTPUT_RATE)?
                .into_iter()
                .map(f32_to_i16)
                .collect()
        };
        pcm.extend(silence(clause.pause_ms));
        Ok(pcm)
    }
}

impl Synthesizer for PiperSynthesizer {
    fn speak(
        &self,
        text: &str,
        on_clause: &mut dyn FnMut(SpokenClause) -> ControlFlow<()>,
    ) -> Result<SynthesisStats, SpeechError> {
        let started = Instant::now();
        let clauses = text::split_clauses(&text::normalize(text));
        let permit = self.gate.acquire(None)?;
        let mut core_permits = Vec::new();
        if let Some(cores) = self.cores.as_deref() {
            for _ in 0..self.config.threads_per_job {
                core_permits.push(cores.acquire(None)?);
            }
        }
        let mut stats = SynthesisStats {
            queued: permit.waited
                + core_permits
                    .iter()
                    .map(|p| p.waited)
                    .sum::<std::time::Duration>(),
            ..Default::default()
        };
        let mut voice = self
            .voices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or_else(|| SpeechError::Engine("no free piper voice despite a free slot".into()))?;
        let mut result = Ok(());
        for clause in &clauses {
            let t = Instant::now();
            let pcm = match self.synthesize_clause(&mut voice, clause) {
                Ok(pcm) => pcm,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            stats.add_clause(pcm.len(), started.elapsed());
            let spoken = SpokenClause {
                text: clause.text.clone(),
                pcm,
                synthesis_time: t.elapsed(),
            };
            if on_clause(spoken).is_break() {
                break;
            }
        }
        self.voices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(voice);
        drop(permit);
        result?;
        stats.total = started.elapsed();
        Ok(stats)
    }

    fn describe(&self) -> String {
        format!(
            "piper {} Hz -> 8 kHz, {}x{} threads",
            self.voice_rate, self.config.jobs, self.config.threads_per_job
        )
    }
}
