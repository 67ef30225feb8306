//! Moonshine base (English, `moonshine-cpp==0.1.4`, MIT) behind `Recognizer`: the second
//! engine (`asr.engine: moonshine`), and the one Whisper's queue can overflow to
//! (`asr.overflow`).
//!
//! The wheel's ONNX Runtime format graphs run on our `ort` and ONNX Runtime (the wheel's own
//! C library and runtime are not loaded: one ONNX Runtime per process). Encoder-decoder with no
//! 30 s window, so its cost follows the audio's length:
//! - encoder: raw 16 kHz samples `input_values` [1, n] -> `last_hidden_state` [1, ~n/384, 416];
//! - merged decoder: `input_ids` [1, 1], `encoder_hidden_states`, `past_key_values.{layer}.
//!   {decoder,encoder}.{key,value}` [1, heads, len, dim] and `use_cache_branch`; `logits`
//!   [1, 1, vocab] and `present.*` out. The first step (start token 1, no cache, empty past)
//!   computes the encoder's keys and values, which every later step reuses; later steps only
//!   grow the decoder's. Greedy until the end token 2.
//!
//! One job runs on one thread and holds one slot of the shared core budget.
//!
//! Measured here (`VOXNAV_BENCH_ASR=moonshine cargo bench --bench asr`, espeak-ng through
//! G.711): 1146 ms median per 2-3 s utterance on one thread against Whisper base's 1324 ms,
//! at 31.7% word error rate against 17.4%. The encoder takes 60-110 ms; each decoder step
//! about 95 ms, because the ORT-format graph casts and transposes its weights at every step
//! (ONNX Runtime does not constant-fold ORT-format models; profiled: Mul, Cast and Transpose
//! take ~80% of a step, MatMul ~10%; the wheel's own C++ runtime is as slow). So it is no
//! capacity win on this machine and is off by default; it stays as the engine choice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::{DynValue, Tensor, ValueType};

use super::SpeechError;
use super::asr::{AsrTimings, RecognizeOptions, Recognizer, Segment, Transcript, validate_input};
use super::gate::JobGate;
use super::turn_models::one_thread_session;
use crate::media::resample::resample;
use crate::models::ModelPaths;

const RATE: u32 = 16_000;
const START_TOKEN: i64 = 1;
const END_TOKEN: usize = 2;
/// Tokens per second of audio the reference allows (speech is far below it), plus a floor
/// for very short answers.
const TOKENS_PER_SEC: f64 = 6.0;
const MIN_TOKENS: usize = 8;

fn engine_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SpeechError {
    move |e| SpeechError::Engine(format!("moonshine {what}: {e}"))
}

/// `tokenizer.bin`: each entry is a length (one byte below 128, else `first - 128 + second *
/// 128`) and that many bytes. Tokens 3-258 are the single bytes; `▁` stands for a space.
#[derive(Debug, Clone)]
pub struct MoonshineTokenizer {
    tokens: Vec<Vec<u8>>,
}

impl MoonshineTokenizer {
    pub fn parse(data: &[u8]) -> Result<Self, SpeechError> {
        let bad =
            |at: usize| SpeechError::Engine(format!("moonshine tokenizer: truncated at {at}"));
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let first = data[i] as usize;
            i += 1;
            let len = if first < 128 {
                first
            } else {
                let second = *data.get(i).ok_or_else(|| bad(i))? as usize;
                i += 1;
                first - 128 + second * 128
            };
            let token = data.get(i..i + len).ok_or_else(|| bad(i))?;
            tokens.push(token.to_vec());
            i += len;
        }
        Ok(Self { tokens })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The text of `ids` (control tokens 0-2 skipped).
    pub fn decode(&self, ids: &[usize]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter(|&&id| id > END_TOKEN)
            .filter_map(|&id| self.tokens.get(id))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes)
            .replace('\u{2581}', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One job's sessions (ONNX Runtime's `run` needs them exclusively).
struct Sessions {
    encoder: Session,
    decoder: Session,
}

/// The decoder's cache layout, read from its inputs.
#[derive(Debug, Clone, Copy)]
struct CacheShape {
    layers: usize,
    heads: usize,
    dim: usize,
}

pub struct MoonshineRecognizer {
    paths: ModelPaths,
    pool: Mutex<Vec<Sessions>>,
    tokenizer: MoonshineTokenizer,
    cache: CacheShape,
    gate: JobGate,
    cores: Option<Arc<JobGate>>,
}

impl MoonshineRecognizer {
    /// Loads the model; at most `jobs` recognitions run at once, `max_queue` wait.
    pub fn new(paths: &ModelPaths, jobs: usize, max_queue: usize) -> Result<Self, SpeechError> {
        let (_, _, tokenizer_path) = paths.moonshine();
        if !tokenizer_path.exists() {
            return Err(SpeechError::ModelMissing(tokenizer_path));
        }
        let data = std::fs::read(&tokenizer_path)
            .map_err(|e| SpeechError::Engine(format!("{}: {e}", tokenizer_path.display())))?;
        let tokenizer = MoonshineTokenizer::parse(&data)?;
        let sessions = Self::sessions(paths)?;
        let cache = cache_shape(&sessions.decoder)?;
        Ok(Self {
            paths: paths.clone(),
            pool: Mutex::new(vec![sessions]),
            tokenizer,
            cache,
            gate: JobGate::new(jobs, max_queue),
            cores: None,
        })
    }

    /// Each job holds one slot of the process's cores while it runs.
    pub fn with_shared_cores(mut self, cores: Arc<JobGate>) -> Self {
        self.cores = Some(cores);
        self
    }

    fn sessions(paths: &ModelPaths) -> Result<Sessions, SpeechError> {
        let (encoder, decoder, _) = paths.moonshine();
        Ok(Sessions {
            encoder: one_thread_session(&encoder, paths)?,
            decoder: one_thread_session(&decoder, paths)?,
        })
    }

    fn take(&self) -> Result<Sessions, SpeechError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(s) => Ok(s),
            None => Self::sessions(&self.paths),
        }
    }

    fn give_back(&self, s: Sessions) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }

    /// Greedy decoding of 16 kHz audio: the token ids and the mean probability of each.
    fn decode(
        &self,
        s: &mut Sessions,
        audio: &[f32],
        options: &RecognizeOptions,
    ) -> Result<(Vec<usize>, f32), SpeechError> {
        let input = Tensor::<f32>::from_array(([1usize, audio.len()], audio.to_vec()))
            .map_err(engine_err("input"))?;
        let mut out = s
            .encoder
            .run(ort::inputs!["input_values" => input])
            .map_err(engine_err("encoder"))?;
        let hidden: DynValue = out
            .remove("last_hidden_state")
            .ok_or_else(|| SpeechError::Engine("moonshine encoder: no last_hidden_state".into()))?;
        drop(out);
        let CacheShape { layers, heads, dim } = self.cache;
        let names: Vec<String> = (0..layers)
            .flat_map(|l| {
                ["decoder", "encoder"].into_iter().flat_map(move |a| {
                    ["key", "value"]
                        .into_iter()
                        .map(move |b| format!("{l}.{a}.{b}"))
                })
            })
            .collect();
        let mut past: Vec<DynValue> = names
            .iter()
            .map(|_| {
                // An empty past (length 0), which `from_array` refuses to make.
                Tensor::<f32>::new(&ort::memory::Allocator::default(), [1, heads, 0, dim])
                    .map(|t| t.into_dyn())
                    .map_err(engine_err("cache"))
            })
            .collect::<Result<_, _>>()?;
        let max_tokens =
            MIN_TOKENS + (audio.len() as f64 / RATE as f64 * TOKENS_PER_SEC).ceil() as usize;
        let (mut tokens, mut prob_sum) = (Vec::new(), 0f32);
        let mut next = START_TOKEN;
        for step in 0..max_tokens {
            if options.cancelled() {
                return Err(SpeechError::Cancelled);
            }
            if options.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SpeechError::Deadline);
            }
            let ids = Tensor::<i64>::from_array(([1usize, 1], vec![next]))
                .map_err(engine_err("input ids"))?;
            let cached = Tensor::<bool>::from_array(([1usize], vec![step > 0]))
                .map_err(engine_err("cache flag"))?;
            let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = vec![
                ("input_ids".into(), ids.into()),
                ("encoder_hidden_states".into(), (&hidden).into()),
                ("use_cache_branch".into(), cached.into()),
            ];
            for (name, value) in names.iter().zip(&past) {
                inputs.push((format!("past_key_values.{name}"), value.into()));
            }
            let mut out = s.decoder.run(inputs).map_err(engine_err("decoder"))?;
            let (token, prob) = {
                let (_, logits) = out["logits"]
                    .try_extract_tensor::<f32>()
                    .map_err(engine_err("logits"))?;
                best(logits)
            };
            for (name, slot) in names.iter().zip(past.iter_mut()) {
                // The encoder's keys and values are computed once, at the first step.
                if step == 0 || name.contains(".decoder.") {
                    *slot = out.remove(format!("present.{name}")).ok_or_else(|| {
                        SpeechError::Engine(format!("moonshine decoder: no present.{name}"))
                    })?;
                }
            }
            drop(out);
            if token == END_TOKEN {
                break;
            }
            tokens.push(token);
            prob_sum += prob;
            next = token as i64;
        }
        let confidence = if tokens.is_empty() {
            0.0
        } else {
            prob_sum / tokens.len() as f32
        };
        Ok((tokens, confidence))
    }
}

/// The most likely token and its probability (softmax over the logits).
fn best(logits: &[f32]) -> (usize, f32) {
    let (mut arg, mut top) = (0, f32::MIN);
    for (i, &l) in logits.iter().enumerate() {
        if l > top {
            (arg, top) = (i, l);
        }
    }
    let total: f32 = logits.iter().map(|&l| (l - top).exp()).sum();
    (arg, if total > 0.0 { 1.0 / total } else { 0.0 })
}

fn cache_shape(decoder: &Session) -> Result<CacheShape, SpeechError> {
    let past: Vec<_> = decoder
        .inputs()
        .iter()
        .filter(|i| i.name().starts_with("past_key_values."))
        .collect();
    let shape = past.first().and_then(|i| match i.dtype() {
        ValueType::Tensor { shape, .. } if shape.len() == 4 => Some((shape[1], shape[3])),
        _ => None,
    });
    match shape {
        Some((heads, dim)) if heads > 0 && dim > 0 && past.len() % 4 == 0 => Ok(CacheShape {
            layers: past.len() / 4,
            heads: heads as usize,
            dim: dim as usize,
        }),
        _ => Err(SpeechError::Engine(
            "moonshine decoder: unexpected cache inputs".into(),
        )),
    }
}

impl Recognizer for MoonshineRecognizer {
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError> {
        validate_input(samples, sample_rate)?;
        let audio = Duration::from_secs_f64(samples.len() as f64 / sample_rate as f64);
        let permit = self.gate.acquire(options.deadline)?;
        let core = match self.cores.as_deref() {
            Some(c) => Some(c.acquire(options.deadline)?),
            None => None,
        };
        if options.cancelled() {
            return Err(SpeechError::Cancelled);
        }
        let queued = permit.waited + core.as_ref().map_or(Duration::ZERO, |c| c.waited);
        let started = Instant::now();
        let pcm = if sample_rate == RATE {
            samples.to_vec()
        } else {
            resample(samples, sample_rate, RATE)?
        };
        let mut sessions = self.take()?;
        let result = self.decode(&mut sessions, &pcm, options);
        self.give_back(sessions);
        drop(core);
        drop(permit);
        let (tokens, confidence) = result?;
        let text = super::whisper::collapse_repeated_phrases(&self.tokenizer.decode(&tokens));
        let segments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Segment {
                text: text.clone(),
                start: Duration::ZERO,
                end: audio,
            }]
        };
        Ok(Transcript {
            text,
            confidence,
            segments,
            timings: AsrTimings {
                audio,
                queued,
                processing: started.elapsed(),
            },
            engine: "moonshine",
        })
    }

    fn describe(&self) -> String {
        "moonshine base greedy".into()
    }

    fn queue(&self) -> (usize, usize) {
        self.gate.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_reads_one_and_two_byte_lengths() {
        let mut data = vec![5];
        data.extend_from_slice(b"<unk>");
        data.extend_from_slice(&[3, b'<', b's', b'>', 4, b'<', b'/', b's', b'>']);
        let long = "\u{2581}".repeat(50); // 150 bytes: a two-byte length
        data.extend_from_slice(&[128 + (150 % 128) as u8, (150 / 128) as u8]);
        data.extend_from_slice(long.as_bytes());
        data.push(5);
        data.extend_from_slice("\u{2581}hi".as_bytes());
        data.push(0);
        let t = MoonshineTokenizer::parse(&data).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t.decode(&[1, 4, 3, 4, 2]), "hi hi");
        assert_eq!(t.decode(&[5, 99]), "");
    }

    #[test]
    fn a_truncated_tokenizer_is_an_error() {
        assert!(MoonshineTokenizer::parse(&[10, b'a']).is_err());
        assert!(MoonshineTokenizer::parse(&[200]).is_err());
    }

    #[test]
    fn best_token_and_its_probability() {
        let (i, p) = best(&[0.0, 2.0, 0.0]);
        assert_eq!(i, 1);
        let expected = 2f32.exp() / (2.0 + 2f32.exp());
        assert!((p - expected).abs() < 1e-5);
    }
}
