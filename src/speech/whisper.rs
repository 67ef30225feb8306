//! Whisper (whisper.cpp via whisper-rs) as a `Recognizer`.
//!
//! One `WhisperContext` (the weights, ~75-150 MB) is shared; each running job uses its own
//! `WhisperState` from a pool. A `JobGate` caps running jobs so that `jobs * threads_per_job`
//! never exceeds the ASR share of the cores; other jobs queue (bounded) and their wait is measured.
//!
//! Decoding is set up for short telephone utterances:
//! - `audio_ctx` trimmed to the utterance (~50 encoder frames per second plus a margin): the
//!   encoder cost falls from a 30 s window to the actual length (about 4x faster on 2-4 s);
//! - beam search (default 5), language pinned (no detection pass), optional domain prompt
//!   (tokenised once), no temperature fallback (deterministic, bounded time), a token cap,
//!   non-speech tokens suppressed, and an abort callback checking the request's deadline;
//! - `no_context`: states are reused across callers, so nothing from one caller's utterance may
//!   condition the next.

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::SpeechError;
use super::asr::{AsrTimings, RecognizeOptions, Recognizer, Segment, Transcript, validate_input};
use super::gate::JobGate;
use crate::media::resample::resample;
use crate::models::paths::{ModelPaths, WhisperModel};

/// Whisper's input rate.
const WHISPER_RATE: u32 = 16_000;
/// Encoder frames per second of audio (1500 frames per 30 s window).
const FRAMES_PER_SEC: f64 = 50.0;
/// Whisper's full window.
const MAX_AUDIO_CTX: i32 = 1500;
/// Silence added before and after the utterance: speech that starts on the first sample loses
/// its first word ("My order" heard as "I order"), and Whisper ends cleaner after a pause.
const PAD_SECS: f64 = 0.3;
/// Token cap per second of audio: fast speech is ~4 words/s, ~1.3 tokens per word, and digit
/// strings cost ~2 tokens per digit; anything beyond is a hallucination loop.
const TOKENS_PER_SEC: f64 = 8.0;
/// Tokens allowed on top (timestamps, punctuation).
const TOKENS_BASE: usize = 12;

/// How the recognizer is set up.
#[derive(Debug, Clone)]
pub struct WhisperConfig {
    pub model: WhisperModel,
    /// Path of the GGML file; defaults to the installed one for `model`.
    pub model_path: Option<PathBuf>,
    /// Language code ("en", "zh"); pinned, never auto-detected.
    pub language: String,
    /// 1 = greedy; more = beam search with that width.
    pub beam_size: u32,
    /// Jobs that may run at once.
    pub jobs: usize,
    /// Threads per job.
    pub threads_per_job: usize,
    /// Jobs that may wait for a slot before new ones are refused.
    pub max_queue: usize,
    /// Domain words that bias recognition ("order number, refund, delivery").
    pub prompt: Option<String>,
    /// Absolute token cap per utterance (the effective cap also scales with its length).
    pub max_tokens: u32,
    /// Trim the encoder window to the utterance.
    pub trim_audio_ctx: bool,
    /// Encoder frames (20 ms each) kept beyond the utterance when trimming; too tight a window
    /// makes Whisper drop or invent words.
    pub audio_ctx_margin: u32,
    /// whisper.cpp's flash attention.
    pub flash_attn: bool,
    /// The model with 8-bit (Q8_0) matrix weights instead of f16.
    pub q8_0: bool,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            model: WhisperModel::Base,
            model_path: None,
            language: "en".into(),
            beam_size: 5,
            jobs: 1,
            threads_per_job: 1,
            max_queue: 32,
            prompt: None,
            max_tokens: 96,
            trim_audio_ctx: true,
            audio_ctx_margin: 150,
            flash_attn: false,
            q8_0: false,
        }
    }
}

/// The whisper.cpp recognizer.
pub struct WhisperRecognizer {
    ctx: WhisperContext,
    states: Mutex<Vec<WhisperState>>,
    gate: JobGate,
    /// The process's cores, shared with TTS: each job holds one per thread it runs.
    cores: Option<std::sync::Arc<JobGate>>,
    config: WhisperConfig,
    prompt_tokens: Vec<i32>,
    eot: i32,
    n_vocab: usize,
}

/// What the logits filter needs: forces end-of-text once a sequence reaches `cap` tokens.
struct TokenCap {
    cap: usize,
    eot: i32,
    n_vocab: usize,
}

impl WhisperRecognizer {
    /// Loads the model. Fails with `ModelMissing` if it has not been installed.
    pub fn new(paths: &ModelPaths, config: WhisperConfig) -> Result<Self, SpeechError> {
        silence_native_logs();
        let path = config.model_path.clone().unwrap_or_else(|| {
            if config.q8_0 {
                paths.whisper_ggml_q8_0(config.model)
            } else {
                paths.whisper_ggml(config.model)
            }
        });
        if !path.exists() {
            return Err(SpeechError::ModelMissing(path));
        }
        if config.language != "en" && !config.model.is_multilingual() {
            return Err(SpeechError::Config(format!(
                "whisper {} is English-only; use base for language {:?}",
                config.model, config.language
            )));
        }
        if config.jobs == 0 || config.threads_per_job == 0 || config.beam_size == 0 {
            return Err(SpeechError::Config(
                "jobs, threads_per_job and beam_size must be at least 1".into(),
            ));
        }
        let mut params = WhisperContextParameters::default();
        params.flash_attn(config.flash_attn);
        let ctx = WhisperContext::new_with_params(&path, params)
            .map_err(|e| SpeechError::Engine(format!("loading {}: {e}", path.display())))?;
        let prompt_tokens = match &config.prompt {
            Some(p) if !p.trim().is_empty() => ctx
                .tokenize(&format!(" {}", p.trim()), 128)
                .map_err(|e| SpeechError::Config(format!("prompt cannot be tokenised: {e}")))?,
            _ => Vec::new(),
        };
        let eot = ctx.token_eot();
        let n_vocab = ctx.n_vocab().max(0) as usize;
        Ok(Self {
            eot,
            n_vocab,
            ctx,
            states: Mutex::new(Vec::new()),
            gate: JobGate::new(config.jobs, config.max_queue),
            cores: None,
            config,
            prompt_tokens,
        })
    }

    /// Shares the cores with other engines (`cores` has one slot per core): a job takes one
    /// for each of its `threads_per_job` threads, and borrows one more while it is free, so a
    /// recognition runs on two threads when the other core is idle and on one when it is not.
    /// Threads never exceed the cores.
    pub fn with_shared_cores(mut self, cores: std::sync::Arc<JobGate>) -> Self {
        self.cores = Some(cores);
        self
    }

    pub fn config(&self) -> &WhisperConfig {
        &self.config
    }

    /// Running and waiting jobs (for metrics).
    pub fn load(&self) -> (usize, usize) {
        self.gate.load()
    }

    fn take_state(&self) -> Result<WhisperState, SpeechError> {
        let pooled = self.states.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(s) => Ok(s),
            None => self
                .ctx
                .create_state()
                .map_err(|e| SpeechError::Engine(format!("creating whisper state: {e}"))),
        }
    }

    fn return_state(&self, state: WhisperState) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(state);
    }

    /// The token cap for an utterance of `audio_secs`.
    fn token_cap(&self, audio_secs: f64) -> TokenCap {
        let by_length = TOKENS_BASE + (audio_secs * TOKENS_PER_SEC).ceil() as usize;
        TokenCap {
            cap: by_length.min(self.config.max_tokens as usize),
            eot: self.eot,
            n_vocab: self.n_vocab,
        }
    }

    fn params<'a>(
        &'a self,
        threads: usize,
        audio_secs: f64,
        stop: &'a Stop,
        cap: &'a TokenCap,
    ) -> FullParams<'a, 'a> {
        let strategy = if self.config.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: self.config.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut p = FullParams::new(strategy);
        p.set_n_threads(threads as i32);
        p.set_language(Some(&self.config.language));
        p.set_detect_language(false);
        p.set_translate(false);
        p.set_no_context(true);
        p.set_single_segment(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_temperature(0.0);
        p.set_temperature_inc(0.0); // no fallback: deterministic and bounded
        p.set_max_tokens(self.config.max_tokens as i32);
        if !self.prompt_tokens.is_empty() {
            p.set_tokens(&self.prompt_tokens);
        }
        if self.config.trim_audio_ctx && audio_secs < 29.0 {
            let frames =
                (audio_secs * FRAMES_PER_SEC).ceil() as i32 + self.config.audio_ctx_margin as i32;
            p.set_audio_ctx(frames.min(MAX_AUDIO_CTX));
        }
        // SAFETY: the filter only reads `cap` (borrowed for 'a, outliving the `full` call) and
        // writes within the `n_vocab` logits whisper.cpp passes.
        unsafe {
            p.set_filter_logits_callback(Some(force_end_at_cap));
            p.set_filter_logits_callback_user_data(cap as *const TokenCap as *mut c_void);
        }
        if stop.deadline.is_some() || stop.cancel.is_some() {
            // SAFETY: the callback only reads the `Stop` behind `user_data`, which is borrowed
            // for 'a and so outlives the `full` call these params are used in.
            unsafe {
                p.set_abort_callback(Some(abort_when_stopped));
                p.set_abort_callback_user_data(stop as *const Stop as *mut c_void);
            }
        }
        p
    }
}

/// whisper.cpp's logits hook: past the cap, only end-of-text may follow. This is the real cap
/// on decoding (whisper.cpp's `max_tokens` only splits segments).
unsafe extern "C" fn force_end_at_cap(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    _tokens: *const whisper_rs::WhisperTokenData,
    n_tokens: std::ffi::c_int,
    logits: *mut f32,
    user_data: *mut c_void,
) {
    // SAFETY: `user_data` is the live `TokenCap` set in `params`; `logits` has n_vocab entries.
    let cap = unsafe { &*(user_data as *const TokenCap) };
    if (n_tokens.max(0) as usize) < cap.cap || logits.is_null() {
        return;
    }
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, cap.n_vocab) };
    for (id, l) in logits.iter_mut().enumerate() {
        if id as i32 != cap.eot {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// When a running recognition stops early: its deadline, or its cancellation.
struct Stop {
    deadline: Option<Instant>,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// whisper.cpp's abort hook: true once the deadline behind `user_data` has passed or the
/// request was cancelled.
unsafe extern "C" fn abort_when_stopped(user_data: *mut c_void) -> bool {
    // SAFETY: set in `params` to a live `&Stop`.
    let stop = unsafe { &*(user_data as *const Stop) };
    stop.deadline.is_some_and(|d| Instant::now() >= d)
        || stop
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

/// Routes whisper.cpp's stderr chatter into whisper-rs's hooks (dropped unless a logging feature
/// is enabled), once per process.
fn silence_native_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

/// Removes Whisper's hallucination loops: a phrase of 4+ words (3+ of them distinct words with
/// letters) immediately repeated, or a phrase of 2-3 words (one with letters, not a number
/// word) said three times or more in a row ("I need I need I need", seen on a short request),
/// possibly with a cut-off last copy, is kept once. Digit runs ("one one one one", "4 7 2 4 7
/// 2") and single words ("no no no") are never touched: callers do say those.
pub fn collapse_repeated_phrases(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let keys: Vec<String> = words.iter().map(|w| key(w)).collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        // The shortest phrase first: a loop of four copies is also two copies of a phrase
        // twice as long, which would keep two.
        for n in 2..=(words.len() - i) / 2 {
            let phrase = &keys[i..i + n];
            let distinct: std::collections::HashSet<&String> = phrase
                .iter()
                .filter(|w| {
                    w.chars().any(|c| c.is_alphabetic()) && !crate::nlu::slots::is_number_word(w)
                })
                .collect();
            let copies_needed = if n >= 4 { 2 } else { 3 };
            let enough_words = if n >= 4 { 3 } else { 1 };
            if distinct.len() < enough_words
                || (1..copies_needed).any(|c| keys.get(i + c * n..i + (c + 1) * n) != Some(phrase))
            {
                continue;
            }
            // Skip every further full copy, then a partial copy at the very end.
            let mut j = i + n;
            while j + n <= words.len() && keys[j..j + n] == *phrase {
                j += n;
            }
            let rest = &keys[j..];
            if !rest.is_empty() && rest.len() < n && phrase.starts_with(rest) {
                j = words.len();
            }
            out.extend_from_slice(&words[i..i + n]);
            i = j;
            skipped = true;
            break;
        }
        if !skipped {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

impl Recognizer for WhisperRecognizer {
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError> {
        validate_input(samples, sample_rate)?;
        let audio = Duration::from_secs_f64(samples.len() as f64 / sample_rate as f64);
        let permit = self.gate.acquire(options.deadline)?;
        // The shared cores: this job's own threads, plus one borrowed while it is free. (Only
        // borrowing when no other recognition runs was measured too: no better at 10 talking
        // callers, worse at 20; docs/speech.md.)
        let mut core_permits = Vec::new();
        if let Some(cores) = self.cores.as_deref() {
            for _ in 0..self.config.threads_per_job {
                core_permits.push(cores.acquire(options.deadline)?);
            }
            core_permits.extend(cores.try_acquire());
        }
        if options.cancelled() {
            return Err(SpeechError::Cancelled);
        }
        let threads = core_permits.len().max(self.config.threads_per_job);
        let queued = permit.waited + core_permits.iter().map(|p| p.waited).sum::<Duration>();
        let started = Instant::now();
        let pad = vec![0f32; (PAD_SECS * WHISPER_RATE as f64) as usize];
        let mut pcm16k = pad.clone();
        if sample_rate == WHISPER_RATE {
            pcm16k.extend_from_slice(samples);
        } else {
            pcm16k.extend(resample(samples, sample_rate, WHISPER_RATE)?);
        }
        pcm16k.extend_from_slice(&pad);
        let padded_secs = pcm16k.len() as f64 / WHISPER_RATE as f64;
        let mut state = self.take_state()?;
        let stop = Stop {
            deadline: options.deadline,
            cancel: options.cancel.clone(),
        };
        let deadline = options.deadline;
        let cap = self.token_cap(audio.as_secs_f64());
        let params = self.params(threads, padded_secs, &stop, &cap);
        let result = state.full(params, &pcm16k);
        if let Err(e) = result {
            // A state that failed mid-run is dropped rather than reused.
            if options.cancelled() {
                return Err(SpeechError::Cancelled);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SpeechError::Deadline);
            }
            return Err(SpeechError::Engine(format!("whisper: {e}")));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            self.return_state(state);
            return Err(SpeechError::Deadline);
        }
        let eot = self.ctx.token_eot();
        let (mut segments, mut prob_sum, mut prob_n) = (Vec::new(), 0f32, 0usize);
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            for i in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(i)
                    && tok.token_id() < eot
                {
                    prob_sum += tok.token_probability();
                    prob_n += 1;
                }
            }
            // Timestamps are in units of 10 ms, counted from the start of the padding.
            let at = |t: i64| {
                let padded = Duration::from_millis(t.max(0) as u64 * 10);
                padded
                    .saturating_sub(Duration::from_secs_f64(PAD_SECS))
                    .min(audio)
            };
            segments.push(Segment {
                text,
                start: at(seg.start_timestamp()),
                end: at(seg.end_timestamp()),
            });
        }
        self.return_state(state);
        drop(core_permits);
        drop(permit);
        let mut text = collapse_repeated_phrases(
            &segments
                .iter()
                .map(|s| s.text.as_str())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        );
        if self.config.language == "zh" {
            // Whisper writes Mandarin in traditional or simplified characters as it likes
            // ("沒聽懂" for "没听懂"); hotlines are written in simplified, and the router's
            // character grams only match the same script.
            text = simplet2s::convert(&text);
        }
        Ok(Transcript {
            text,
            confidence: if prob_n == 0 {
                0.0
            } else {
                prob_sum / prob_n as f32
            },
            segments,
            timings: AsrTimings {
                audio,
                queued,
                processing: started.elapsed(),
            },
            engine: "whisper",
        })
    }

    fn queue(&self) -> (usize, usize) {
        self.gate.load()
    }

    fn describe(&self) -> String {
        let decoding = if self.config.beam_size > 1 {
            format!("beam{}", self.config.beam_size)
        } else {
            "greedy".into()
        };
        format!(
            "whisper {}{} {decoding} {}x{} threads",
            self.config.model,
            if self.config.q8_0 { " q8_0" } else { "" },
            self.config.jobs,
            self.config.threads_per_job
        )
    }
}

#[cfg(test)]
mod tests {
    use super::collapse_repeated_phrases as collapse;

    #[test]
    fn hallucination_loops_collapse_but_real_repeats_stay() {
        assert_eq!(
            collapse("and I get a refund for the jacket and I get a refund for the jacket."),
            "and I get a refund for the jacket"
        );
        assert_eq!(
            collapse("The box was damaged. The box was damaged. The box was damaged. The box"),
            "The box was damaged."
        );
        assert_eq!(
            collapse("one one one one one one"),
            "one one one one one one"
        );
        assert_eq!(
            collapse("4 7 2 4 7 2 4 7 2 4 7 2"),
            "4 7 2 4 7 2 4 7 2 4 7 2"
        );
        assert_eq!(collapse("no no no I said no"), "no no no I said no");
        // A short request that looped.
        assert_eq!(collapse("I need I need I need I need I need I"), "I need");
        assert_eq!(
            collapse("I want to I want to I want to talk to someone"),
            "I want to talk to someone"
        );
        assert_eq!(collapse("hello hello hello"), "hello hello hello");
        assert_eq!(collapse("thank you thank you"), "thank you thank you");
        assert_eq!(
            collapse("four two four two four two"),
            "four two four two four two"
        );
        assert_eq!(collapse("check my order please"), "check my order please");
        // Whisper base on a live caller's question (the product voice through G.711, with
        // the turn's pre-roll): four copies and a cut fifth, once kept as two.
        assert_eq!(
            collapse(
                "which cards can I pay with which cards can I pay with which cards can I pay \
                 with which cards can I pay with which cards can I"
            ),
            "which cards can I pay with"
        );
        assert_eq!(collapse(""), "");
    }
}
