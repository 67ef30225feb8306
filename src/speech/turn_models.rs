//! The turn-taking models on ONNX Runtime (the same `ort` and library Piper uses):
//!
//! - **Silero VAD** (`silero-vad==6.2.3`, MIT): speech probability of 32 ms chunks at 8 kHz
//!   natively (256 new samples plus the previous chunk's last 32 as context, a recurrent
//!   state of [2, 1, 128] per call). One session serves every call behind a mutex (about
//!   0.1 ms per chunk); each call keeps its own state (`SileroVad`). A chunk quieter than
//!   -60 dBFS is not speech on any telephone line and is not run through the model: a caller
//!   listening on a quiet line (most of a call's time) costs almost nothing, where running
//!   every chunk of hundreds of calls through the one session would take the machine's cores.
//! - **Smart Turn v3.2** (`pipecat-ai==1.14.0`, BSD-2-Clause): the probability that a turn is
//!   complete, judged from the audio. Its input is the Whisper log-mel spectrogram (80 bins,
//!   10 ms hop) of the last 8 s at 16 kHz, zero-padded at the front, computed from a waveform
//!   normalised to zero mean and unit variance: telephone audio is resampled 8 -> 16 kHz
//!   first (fed as if it were 16 kHz, its accuracy collapses). About 45-60 ms on one thread:
//!   it holds one slot of the shared core budget while it runs.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;

use super::SpeechError;
use super::gate::JobGate;
use crate::call::turn::EndOfTurnModel;
use crate::call::turn::model::VoiceActivity;
use crate::models::ModelPaths;

/// New samples per Silero chunk at 8 kHz, and the context kept from the previous chunk.
const VAD_CHUNK: usize = 256;
const VAD_CONTEXT: usize = 32;
const VAD_STATE: usize = 2 * 128;

/// Smart Turn's window: 8 s at 16 kHz, STFT of 400 points every 160 samples, 80 mel bins.
const TURN_RATE: u32 = 16_000;
const TURN_SAMPLES: usize = 8 * TURN_RATE as usize;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const N_FRAMES: usize = TURN_SAMPLES / HOP;
const N_BINS: usize = N_FFT / 2 + 1;

fn engine_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> SpeechError + '_ {
    move |e| SpeechError::Engine(format!("{what}: {e}"))
}

/// A single-threaded session (no spinning: a job's core comes from the shared budget, and
/// the others belong to Whisper and Piper).
pub(super) fn one_thread_session(path: &Path, paths: &ModelPaths) -> Result<Session, SpeechError> {
    if !path.exists() {
        return Err(SpeechError::ModelMissing(path.to_path_buf()));
    }
    super::piper::init_onnxruntime(&paths.onnxruntime_lib())?;
    let what = path.display().to_string();
    let builder = Session::builder().map_err(engine_err(&what))?;
    let builder = builder.with_intra_threads(1).map_err(engine_err(&what))?;
    let builder = builder.with_inter_threads(1).map_err(engine_err(&what))?;
    let mut builder = builder
        .with_intra_op_spinning(false)
        .map_err(engine_err(&what))?;
    builder.commit_from_file(path).map_err(engine_err(&what))
}

/// A chunk whose RMS is below this (-60 dBFS) is silence without asking the model: far
/// below speech on a telephone line (-40 to -10 dBFS) and below the noise floor of a live one.
const SILENT_RMS: f32 = 0.001;

/// The Silero VAD model, shared by every call.
pub struct SileroModel {
    session: Mutex<Session>,
    /// Chunks run through the model (the silence gate's effect, for tests and benchmarks).
    inferences: std::sync::atomic::AtomicU64,
}

impl SileroModel {
    pub fn load(paths: &ModelPaths) -> Result<Arc<Self>, SpeechError> {
        Ok(Arc::new(Self {
            session: Mutex::new(one_thread_session(&paths.silero_vad(), paths)?),
            inferences: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// How many chunks have been run through the model so far.
    pub fn inferences(&self) -> u64 {
        self.inferences.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One chunk (context + new samples) with the call's state; the speech probability.
    fn infer(&self, input: &[f32], state: &mut [f32; VAD_STATE]) -> Result<f32, SpeechError> {
        let err = engine_err("silero vad");
        let x = Tensor::<f32>::from_array(([1usize, input.len()], input.to_vec())).map_err(&err)?;
        let s = Tensor::<f32>::from_array(([2usize, 1, 128], state.to_vec())).map_err(&err)?;
        let sr = Tensor::<i64>::from_array(([1usize], vec![8000i64])).map_err(&err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        (self.inferences).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = session
            .run(ort::inputs!["input" => x, "state" => s, "sr" => sr])
            .map_err(&err)?;
        let (_, p) = out["output"].try_extract_tensor::<f32>().map_err(&err)?;
        let (_, next) = out["stateN"].try_extract_tensor::<f32>().map_err(&err)?;
        state.copy_from_slice(&next[..VAD_STATE]);
        Ok(p.first().copied().unwrap_or(0.0))
    }
}

/// One call's Silero state.
pub struct SileroVad {
    model: Arc<SileroModel>,
    state: [f32; VAD_STATE],
    /// The last samples of the previous chunk, then the samples not yet in a chunk.
    window: Vec<f32>,
    probability: f32,
}

impl SileroVad {
    pub fn new(model: Arc<SileroModel>) -> Self {
        Self {
            model,
            state: [0.0; VAD_STATE],
            window: vec![0.0; VAD_CONTEXT],
            probability: 0.0,
        }
    }
}

impl VoiceActivity for SileroVad {
    /// The probability of the latest complete 32 ms chunk (a 20 ms frame completes one
    /// chunk most of the time).
    fn speech_probability(&mut self, frame: &[f32]) -> f32 {
        self.window.extend_from_slice(frame);
        while self.window.len() >= VAD_CONTEXT + VAD_CHUNK {
            let chunk = &self.window[..VAD_CONTEXT + VAD_CHUNK];
            let rms = (chunk.iter().map(|s| s * s).sum::<f32>() / chunk.len() as f32).sqrt();
            if rms < SILENT_RMS {
                // Silence: no speech, and the recurrent state starts afresh when sound
                // returns (as for a new stream, which is how the model was trained to start).
                self.probability = 0.0;
                self.state = [0.0; VAD_STATE];
                self.window.drain(..VAD_CHUNK);
                continue;
            }
            match self.model.infer(chunk, &mut self.state) {
                Ok(p) => self.probability = p,
                Err(e) => {
                    // Never leave a caller unheard: treat the chunk by its energy instead.
                    tracing::warn!("{e}");
                    self.probability = if rms > 0.02 { 1.0 } else { 0.0 };
                }
            }
            self.window.drain(..VAD_CHUNK);
        }
        self.probability
    }

    fn reset(&mut self) {
        self.state = [0.0; VAD_STATE];
        self.window = vec![0.0; VAD_CONTEXT];
        self.probability = 0.0;
    }
}

/// Smart Turn v3.2.
pub struct SmartTurn {
    session: Mutex<Session>,
    /// Row-major 80 x 201 Slaney mel filters (the bank the Whisper converter computes).
    mel: Vec<f32>,
    fft: Arc<dyn realfft::RealToComplex<f64>>,
    window: Vec<f64>,
    cores: Option<Arc<JobGate>>,
}

impl SmartTurn {
    pub fn load(paths: &ModelPaths) -> Result<Self, SpeechError> {
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        // The periodic Hann window (torch.hann_window, numpy's hanning(N + 1)[:-1]).
        let window = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos())
            .collect();
        Ok(Self {
            session: Mutex::new(one_thread_session(&paths.smart_turn(), paths)?),
            mel: crate::models::mel::filter_bank(N_MELS),
            fft,
            window,
            cores: None,
        })
    }

    /// Takes a slot of the shared core budget while it runs.
    pub fn with_shared_cores(mut self, cores: Arc<JobGate>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// The model's input for 16 kHz audio: [80 x 800] log-mel features of its last 8 s.
    pub fn features(&self, audio16k: &[f32]) -> Vec<f32> {
        // The last 8 s, zero-padded at the front.
        let tail = &audio16k[audio16k.len().saturating_sub(TURN_SAMPLES)..];
        let mut x = vec![0f32; TURN_SAMPLES - tail.len()];
        x.extend_from_slice(tail);
        // Zero mean, unit variance over the whole window (padding included), in f32 as the
        // reference does.
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        let scale = 1.0 / (var + 1e-7).sqrt();
        let x: Vec<f64> = x.iter().map(|&v| (v as f64 - mean) * scale).collect();
        // Centred frames: reflect-padded by N_FFT / 2 on both sides.
        let pad = N_FFT / 2;
        let at = |i: isize| -> f64 {
            let n = x.len() as isize;
            let j = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            x[j as usize]
        };
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f64; N_BINS];
        let mut log_mel = vec![0f32; N_MELS * N_FRAMES];
        // 801 frames fit; the reference drops the last.
        for t in 0..N_FRAMES {
            let start = (t * HOP) as isize - pad as isize;
            for (k, v) in frame.iter_mut().enumerate() {
                *v = at(start + k as isize) * self.window[k];
            }
            if self.fft.process(&mut frame, &mut spectrum).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.mel[m * N_BINS..(m + 1) * N_BINS];
                let e: f64 = row.iter().zip(&power).map(|(&w, &p)| w as f64 * p).sum();
                log_mel[m * N_FRAMES + t] = e.max(1e-10).log10() as f32;
            }
        }
        let top = log_mel.iter().copied().fold(f32::MIN, f32::max);
        for v in log_mel.iter_mut() {
            *v = (v.max(top - 8.0) + 4.0) / 4.0;
        }
        log_mel
    }

    /// The probability that 16 kHz audio is a complete turn.
    pub fn complete_16k(&self, audio16k: &[f32]) -> Result<f32, SpeechError> {
        let _core = match self.cores.as_deref() {
            Some(c) => Some(c.acquire(None)?),
            None => None,
        };
        let features = self.features(audio16k);
        let err = engine_err("smart turn");
        let input =
            Tensor::<f32>::from_array(([1usize, N_MELS, N_FRAMES], features)).map_err(&err)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let out = session
            .run(ort::inputs!["input_features" => input])
            .map_err(&err)?;
        let (_, p) = out[0].try_extract_tensor::<f32>().map_err(&err)?;
        Ok(p.first().copied().unwrap_or(0.0))
    }
}

impl EndOfTurnModel for SmartTurn {
    fn complete_probability(&self, audio: &[f32]) -> Result<f32, String> {
        let audio16k =
            crate::media::resample::resample(audio, 8000, TURN_RATE).map_err(|e| e.to_string())?;
        self.complete_16k(&audio16k).map_err(|e| e.to_string())
    }
}
