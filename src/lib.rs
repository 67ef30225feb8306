//! voxnav: a smart IVR server. Callers say what they want; voxnav recognises it, decides each turn
//! (answer, walk the dialplan, or transfer to a human) and speaks the reply, all offline.
//!
//! # Layout
//!
//! ```text
//! models/   model setup: pinned registry packages, CTranslate2 -> GGML Whisper conversion
//! speech/   speech engines behind traits: asr (Recognizer + whisper pool), tts (Synthesizer +
//!           piper pool), text normalisation for speech, fake engines for tests
//! media/    sans-IO audio and RTP: G.711, RTP/RTCP, jitter buffer, port pool, DTMF, WAV, resampling
//! sip/      sans-IO SIP: framing, envelope, validation (RFC 4475 verdicts), transactions,
//!           dialogs, SDP, session timers, the endpoint, the agents' registrar
//! agents    the agents file: human agents, their skills, queues and digest hashes
//! net/      the only socket code: UDP/TCP SIP listeners driving the endpoint, per-call RTP
//! nlu/      sentence embeddings (MiniLM in pure Rust), intent router, slots, knowledge base
//! call/     the live call: sans-IO session, turn detectors, its driver task, the test caller
//! routing/  agent states and the choice of an agent for a queue (the ACD, sans-IO)
//! report    the reporting seam: typed events from calls and the server, observed by ops/
//! ops/      observers (metrics, live view, records), the admin API and dashboard
//! testkit   WER, telephone channel and espeak-ng speech for tests and benchmarks
//! ```
//!
//! `src/main.rs` is the command line (`say`, `transcribe`, `models`). The shape the rest grows into
//! (sip/, net/, nlu/, dialplan/, call/, routing/, ops/) is described in `docs/architecture.md`.

pub mod agents;
pub mod call;
pub mod config;
pub mod dialplan;
pub mod media;
pub mod models;
pub mod net;
pub mod nlu;
pub mod ops;
pub mod report;
pub mod routing;
pub mod sip;
#[cfg(feature = "speech")]
pub mod speech;
#[cfg(feature = "speech")]
pub mod testkit;
