//! Turn-taking: when has the caller started talking, is it a real interruption or a
//! backchannel, and when is their turn over. Sans-IO and frame-driven (20 ms of 8 kHz
//! audio at a time, so time is counted in frames and tests need no clock); slow judgements
//! (the end-of-turn model) are asked for with `TurnEvent::Consult` and answered with
//! `handle_verdict`, so the call session runs them off its task.
//!
//! Two implementations:
//! - `energy::Endpointer`: frame energy over an adaptive noise floor and a fixed 700 ms
//!   end-of-speech silence (the first version's rule);
//! - `model::ModelTurn`: a voice-activity model (Silero VAD) decides speech, backchannels and
//!   barge-in; at a short pause the end-of-turn model (Smart Turn) is consulted and a
//!   complete turn ends at once; an incomplete one waits for a longer silence, longer still at
//!   an ask that collects digits (where only a number long enough may end it early); a hard
//!   cap ends a turn that never pauses.

pub mod energy;
pub mod model;

use crate::report::TurnEnd;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
/// Milliseconds per frame.
pub const FRAME_MS: u32 = 20;

/// What the ask being answered expects: it changes how long a pause may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Words (a request, yes/no).
    Speech,
    /// A number read out, at least `min` digits (callers pause between groups).
    Digits { min: usize },
}

/// What a frame (or a verdict) led to.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// The caller started speaking (no-input timers stop).
    SpeechStart,
    /// The caller has been speaking long enough that a prompt allowing it stops (a
    /// backchannel or a cough does not get here).
    BargeIn,
    /// The caller paused: the utterance so far. If they say nothing more, the turn's audio
    /// will be exactly this (recognition may start on it now).
    Pause(Vec<f32>),
    /// The end-of-turn model should judge the audio so far; `id` comes back with the verdict.
    Consult { id: u64, audio: Vec<f32> },
    /// The model judged the turn so far complete: only its transcript is missing to end it
    /// (recognise the pause's audio now if that is not already under way).
    LikelyComplete,
    /// The caller went on after a pause: what was started on the pause's audio is stale.
    Resumed,
    /// The turn is over: its audio (pre-roll included, trailing silence trimmed to the pause
    /// length), why, and how long ago the voice ended.
    Utterance {
        audio: Vec<f32>,
        ended_by: TurnEnd,
        silence_ms: u32,
    },
    /// Speech too short to be a request (backchannel, cough): ignored.
    TooShort,
}

/// Decides, frame by frame, when the caller starts and stops talking.
pub trait TurnDetector: Send {
    /// One 20 ms frame in [-1, 1]; events come out of `poll_event`.
    fn handle_frame(&mut self, frame: &[f32]);
    /// The end-of-turn model's probability that consultation `id`'s audio is a complete turn.
    fn handle_verdict(&mut self, id: u64, complete: f32);
    /// What recognition made of the first `samples` samples of the current utterance (a
    /// speculative result), and whether the hotline understands it: an early end needs words
    /// that read as finished and mean something; at a digits ask, a number long enough.
    fn handle_transcript(&mut self, samples: usize, text: &str, understood: bool);
    /// The next turn's expectation (set when the dialplan listens).
    fn expect(&mut self, expectation: Expectation);
    fn poll_event(&mut self) -> Option<TurnEvent>;
    /// True while an utterance is being collected.
    fn in_speech(&self) -> bool;
    /// True while the caller's voice is going on now (in an utterance, and not in a pause).
    fn voice_active(&self) -> bool;
    /// Forgets any partial utterance.
    fn reset(&mut self);
    /// A name for records ("energy", "silero+smart-turn").
    fn name(&self) -> &'static str;
}

/// The end-of-turn model: the probability that 8 kHz audio (the caller's turn so far, its
/// pause included) is a complete turn. Slow (tens of milliseconds): the call driver runs it
/// off the call's task, on the shared core budget.
pub trait EndOfTurnModel: Send + Sync {
    fn complete_probability(&self, audio: &[f32]) -> Result<f32, String>;
}

/// Makes each call's turn detector (its own state; shared models behind it), given the
/// thresholds its hotline sets (`settings.turn`).
pub type DetectorFactory = std::sync::Arc<
    dyn Fn(&crate::dialplan::model::TurnOverrides) -> Box<dyn TurnDetector> + Send + Sync,
>;
