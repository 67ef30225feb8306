//! One call's conversation, sans-IO: the dialplan engine, turn-taking, the reply's playback
//! and the transfer bridge, with no threads, no clock and no sockets. The driver
//! (`call::driver`) feeds it inputs with `now` and carries out its outputs:
//!
//! ```text
//!  handle_start / handle_audio / handle_digit ─┐
//!  handle_played_out(mark)                     │               ┌─▶ Play / StopPlayback
//!  handle_recognized(job) / handle_verdict(job)├─▶ CallSession ─┼─▶ Recognize / JudgeTurn
//!  handle_synthesized(job) / handle_http(job)  │               ├─▶ Synthesize / StopSynthesis / Http
//!  handle_agent(event) / handle_hangup         │               ├─▶ Transfer / ToAgent / AgentDigit / HangupAgent
//!  handle_timeout(now) ◀── poll_timeout() ─────┘               └─▶ Hangup / Report
//! ```
//!
//! Turn-taking rules (each has a test below, on a fake clock):
//! - the no-input timer starts when the prompt has played out, and stops when the caller
//!   starts speaking or typing;
//! - the caller's speech *holds* a prompt that allows it at the turn detector's barge-in
//!   (within 300 ms of onset); the barge-in is committed (the prompt and the synthesis behind
//!   it dropped) once the speech lasts `BARGE_COMMIT` or is recognised as something the
//!   hotline understands, and the prompt resumes where it was held if it was a backchannel
//!   ("uh-huh", "okay"), a cough or noise; a key stops the prompt at once;
//! - speech that began during a prompt and never barged in is a backchannel: ignored;
//! - digits are collected up to the ask's maximum, `#`, or a 3 s pause;
//! - at a pause the audio so far is recognised speculatively; if the caller goes on, that
//!   recognition is cancelled (dropped from the engine's queue, or stopped); if the turn ends
//!   with exactly that audio, its result is used;
//! - recognition that fails, is declined, or takes past its deadline offers the keypad;
//! - an utterance that ends while the bot is still busy (recognising, synthesising, asking a
//!   backend) is kept and recognised when the call listens again;
//! - the outcome (self-served, transferred, failed, abandoned) is decided here when the call
//!   ends, and reported.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::turn::energy::{Endpointer, EndpointerConfig};
use super::turn::{Expectation, TurnDetector, TurnEvent};
use crate::dialplan::engine::{Action, CallEngine, Event, Step};
use crate::dialplan::phrases::Phrase;
use crate::report::{Outcome, Report, TransferStatus, TurnEnd, TurnLatency};

/// Keys typed without the closing `#` are taken as complete after this pause.
pub const INTER_DIGIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Recognition (queue wait included) of a short turn past this gives up and offers the
/// keypad; longer turns get more (see [`recognition_deadline`]).
pub const RECOGNITION_DEADLINE: Duration = Duration::from_secs(5);
/// Extra recognition time per second of a turn's audio beyond the first five. Whisper base
/// on one thread (a busy machine lends no second core) took 9.6 s for 13 s of fast, unbroken
/// speech that ran to the token cap (RTF 0.74), and the machine may be shared with more than
/// our engines; a caller who talked for 15 s must not be told their words were not caught
/// because they talked for long.
const RECOGNITION_TIME_PER_AUDIO_SEC: f64 = 1.0;

/// How long the recognition of `samples` of 8 kHz audio may take, queue wait included.
pub fn recognition_deadline(samples: usize) -> Duration {
    let secs = samples as f64 / 8000.0;
    RECOGNITION_DEADLINE
        + Duration::from_secs_f64((secs - 5.0).max(0.0) * RECOGNITION_TIME_PER_AUDIO_SEC)
}
/// Synthesis of one reply past this gives up (the call goes on without the rest of it).
pub const SYNTHESIS_DEADLINE: Duration = Duration::from_secs(15);
/// Speech still going this long after a barge-in is a real interruption (a backchannel is
/// over by then).
pub const BARGE_COMMIT: Duration = Duration::from_millis(700);
/// What callers say to show they are listening, not to take the turn.
const BACKCHANNELS: &[&str] = &[
    "uh-huh",
    "uh huh",
    "uhhuh",
    "mm-hmm",
    "mm hmm",
    "mhm",
    "mm",
    "hmm",
    "uh",
    "um",
    "ok",
    "okay",
    "right",
    "yeah",
    "yep",
    "sure",
    "alright",
    "all right",
    "i see",
    "嗯",
    "对",
    "好",
    "嗯嗯",
];

/// Whether recognised text is only a backchannel (or nothing).
pub fn is_backchannel(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '-' || !c.is_ascii())
        .filter(|c| !matches!(c, '。' | '，' | '？' | '！'))
        .collect();
    let t = t.trim();
    t.is_empty()
        || BACKCHANNELS.contains(&t)
        || t.split_whitespace().all(|w| BACKCHANNELS.contains(&w))
}

/// Agent audio kept queued at most (20 ms frames): the relay adds no more delay than this.
const MAX_RELAY_FRAMES: u64 = 10;

/// What recognition made of an utterance.
pub type Heard = Result<(String, f32), String>;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Queue audio (8 kHz) for the caller, then `mark` (`handle_played_out` once sent).
    Play {
        pcm: Vec<i16>,
        mark: u64,
    },
    /// Drop the caller's queued audio (barge-in), and release a hold.
    StopPlayback,
    /// Hold playback where it is (a barge-in that may be a backchannel).
    PausePlayback,
    /// Resume held playback (it was a backchannel, a cough, noise).
    ResumePlayback,
    /// Recognise 8 kHz audio (`speculative`: started at a pause, maybe cancelled later).
    Recognize {
        job: u64,
        audio: Vec<f32>,
        speculative: bool,
    },
    /// A speculative recognition nobody needs any more: dropped from the queue, or stopped.
    CancelRecognition {
        job: u64,
    },
    /// Ask the end-of-turn model about the audio so far.
    JudgeTurn {
        job: u64,
        audio: Vec<f32>,
    },
    /// Synthesise the texts in order, clause by clause (`handle_synthesized`).
    Synthesize {
        job: u64,
        texts: Vec<String>,
    },
    StopSynthesis {
        job: u64,
    },
    Http {
        job: u64,
        method: String,
        url: String,
        body: Option<String>,
        timeout: Duration,
    },
    /// Ring a seat for a transfer target (`handle_agent` follows the leg).
    Transfer {
        target: String,
        reason: String,
        transcript: Vec<String>,
        priority: u8,
    },
    /// The caller left the queue before an agent answered (a key while waiting): stop
    /// waiting, and stop ringing the agent's phone if it rings.
    CancelTransfer,
    /// The caller whose agent's phone went silent has heard the apology: ring the next agent
    /// (before, an agent answering would cut it short).
    RejoinQueue,
    /// Queue a callback (`call::callback`).
    Callback(crate::call::callback::CallbackRequest),
    /// Save the caller's message for `queue` (8 kHz).
    SaveMessage {
        queue: String,
        pcm: Vec<i16>,
    },
    /// 20 ms of the caller's audio for the agent, and their keys.
    ToAgent(Vec<i16>),
    AgentDigit(char),
    HangupAgent,
    /// End the call (BYE).
    Hangup {
        reason: String,
    },
    Report(Report),
}

/// Synthesis progress.
#[derive(Debug, Clone, PartialEq)]
pub enum Synthesis {
    /// The next clause's audio (8 kHz).
    Clause(Vec<i16>),
    /// All texts done (or failed: the call goes on).
    Done,
}

/// The agent leg of a transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The seat's SIP URI is being dialled.
    Dialling {
        uri: String,
    },
    Ringing,
    Answered,
    /// Never answered: busy, no answer, unreachable, or no seat for the target.
    Failed(String),
    /// 20 ms of the agent's audio.
    Audio(Vec<i16>),
    /// The agent's side ended.
    Ended(String),
    /// Still waiting in a queue: the caller's place, and the estimated wait once known.
    Queued {
        position: usize,
        estimated_wait: Option<Duration>,
    },
    /// The agent's phone went silent mid-call (it is hung up): the caller is back at the
    /// head of the queue (`requeued`), or the transfer has failed.
    Lost {
        requeued: bool,
        why: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// A warm transfer's announcement to the agent never finished: put the caller through.
    Whisper,
    NoInput,
    InterDigit,
    Recognition,
    Synthesis,
    BargeCommit,
    /// A message reached the voicemail node's `max_s`.
    Message,
}

const TIMERS: [Timer; 7] = [
    Timer::Whisper,
    Timer::NoInput,
    Timer::InterDigit,
    Timer::Recognition,
    Timer::Synthesis,
    Timer::BargeCommit,
    Timer::Message,
];

/// Deadlines by timer (timers are data).
#[derive(Debug, Default)]
struct Timers([Option<Instant>; TIMERS.len()]);

impl Timers {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

/// The reply being synthesised.
#[derive(Debug)]
struct Speaking {
    job: u64,
    barge_in: bool,
    /// The actions after the texts (run once synthesis is done).
    rest: Vec<Action>,
    /// Barged in: later clauses are dropped.
    stopped: bool,
}

#[derive(Debug, Clone, Copy)]
struct Listening {
    timeout: Duration,
    dtmf_max: usize,
}

/// The caller's utterance, waiting to be recognised.
#[derive(Debug)]
struct Utterance {
    audio: Vec<f32>,
    /// When the voice ended, and when the turn was judged over.
    voice_ended: Instant,
    endpoint: Instant,
    ended_by: TurnEnd,
}

/// Recognition started at a pause.
#[derive(Debug)]
struct Speculation {
    job: u64,
    samples: usize,
    heard: Option<Heard>,
    /// The pause's audio while the driver may still decline (the engine was busy): if the
    /// end-of-turn model then calls the turn complete, it is recognised after all.
    audio: Option<Vec<f32>>,
    /// The end-of-turn model called this pause complete.
    likely: bool,
}

/// The turn being timed.
#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    voice_ended: Instant,
    endpoint: Instant,
    ended_by: TurnEnd,
    speculative: bool,
    asr_done: Option<Instant>,
    decided: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BridgeState {
    Dialling,
    Connected,
}

#[derive(Debug)]
struct Bridge {
    state: BridgeState,
    uri: String,
    reason: String,
    started: Instant,
    to_agent: u64,
    to_caller: u64,
    hold: HoldAudio,
    /// Back in the queue after the agent's phone went silent: once the apology has played
    /// (the hold audio resumes), the driver may ring the next agent (`Output::RejoinQueue`).
    rejoin_queue: bool,
}

/// The call's conversation.
pub struct CallSession {
    call_id: String,
    caller: String,
    dialplan_version: u64,
    engine: CallEngine,
    turn: Box<dyn TurnDetector>,
    outputs: VecDeque<Output>,
    timers: Timers,
    next_id: u64,
    /// Marks queued and played out: audio is playing while they differ.
    mark_queued: u64,
    mark_played: u64,
    speaking: Option<Speaking>,
    listening: Option<Listening>,
    /// The last listen (for the keypad offer).
    last_listen: (u64, usize),
    digits: String,
    /// The utterance in progress counts as a turn (false: it began during a prompt and
    /// never barged in, a backchannel).
    utterance_counts: bool,
    recognition: Option<u64>,
    /// A recognition whose result is the speculation's, once it arrives.
    awaiting_speculation: bool,
    http: Option<u64>,
    pending: Option<Utterance>,
    speculation: Option<Speculation>,
    timing: Option<TurnTiming>,
    /// A timed turn's decision record, held until its reply's first audio (with latency).
    pending_decision: Option<serde_json::Value>,
    bridge: Option<Bridge>,
    /// Relayed agent frames not yet played out (their marks).
    relay_queued: u64,
    /// A barge-in holding the prompt, not yet committed: the listening state to return to
    /// if it was only a backchannel.
    barge: Option<Option<Listening>>,
    end_after_audio: Option<String>,
    answered: bool,
    /// The dialplan hung up, or a turn ended the conversation (goodbye).
    dialplan_ended: bool,
    reached_agent: bool,
    transfer_reason: Option<String>,
    /// The caller's message being recorded (a `voicemail` node).
    message: Option<Message>,
    /// Agent assist: while the caller talks to an agent, each of their utterances is
    /// recognised and matched against the knowledge base for the agent's desktop.
    assist: bool,
    /// Recognitions of assist utterances in flight, with when the caller's voice ended.
    assist_jobs: Vec<(u64, Instant)>,
    /// The agent's side of the conversation, transcribed for the desk too (with assist):
    /// an energy endpointer of its own (the agent talks to a person, not to a turn model),
    /// created when the agent answers.
    agent_turn: Option<Endpointer>,
    /// Recognitions of the agent's utterances in flight, with when their voice ended.
    agent_jobs: Vec<(u64, Instant)>,
    /// Recognitions of what a caller waiting for an agent said (they may ask for one of the
    /// transfer's keys by voice: "call me back").
    waiting_jobs: Vec<u64>,
    /// Transferred (waiting or talking to the agent): the recognition started at the
    /// caller's pause. The end-of-turn model ends an utterance early only on words that read
    /// as finished, as for the bot; if nothing more is said, it is the utterance's.
    aside_speculation: Option<Speculation>,
    /// Warm transfer (`transfer.warm`): the agent who answers first hears who calls and why.
    warm: bool,
    /// The announcement to the agent under way: the caller is put through once it has
    /// played.
    whisper: Option<Whisper>,
    ended: bool,
}

/// A warm transfer's announcement to the agent.
struct Whisper {
    job: u64,
    /// Synthesised audio not yet sent (paced by the caller's own 20 ms frames).
    audio: VecDeque<i16>,
    /// Synthesis is over.
    done: bool,
}

/// The longest a warm transfer's announcement may take before the caller is put through
/// anyway (synthesis stalled).
const WHISPER_LIMIT: Duration = Duration::from_secs(12);

/// A caller's message being recorded.
#[derive(Debug)]
struct Message {
    queue: String,
    pcm: Vec<i16>,
    /// After the tone: audio before it is not the message.
    from: Instant,
    /// When the caller was last heard (None: not yet).
    last_voiced: Option<Instant>,
}

/// The tone before a message (1 kHz, the usual voicemail beep).
const MESSAGE_TONE: Duration = Duration::from_millis(400);
/// A message ends after this long without the caller's voice...
const MESSAGE_SILENCE: Duration = Duration::from_secs(4);
/// ...or when nothing at all was said this long after the tone.
const MESSAGE_NOTHING: Duration = Duration::from_secs(10);
/// A 20 ms frame louder than this (RMS, 16-bit: about -36 dBFS) is the caller's voice.
const MESSAGE_VOICED_RMS: f64 = 500.0;

impl std::fmt::Debug for CallSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSession")
            .field("call_id", &self.call_id)
            .field("listening", &self.listening)
            .field("ended", &self.ended)
            .finish()
    }
}

impl CallSession {
    /// A call on the dialplan `engine` (of `dialplan_version`), with its turn detector.
    pub fn new(
        call_id: &str,
        caller: &str,
        engine: CallEngine,
        dialplan_version: u64,
        turn: Box<dyn TurnDetector>,
    ) -> Self {
        Self {
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            dialplan_version,
            engine,
            turn,
            outputs: VecDeque::new(),
            timers: Timers::default(),
            next_id: 1,
            mark_queued: 0,
            mark_played: 0,
            speaking: None,
            listening: None,
            last_listen: (8000, 10),
            digits: String::new(),
            utterance_counts: true,
            recognition: None,
            awaiting_speculation: false,
            http: None,
            pending: None,
            speculation: None,
            timing: None,
            pending_decision: None,
            bridge: None,
            relay_queued: 0,
            barge: None,
            end_after_audio: None,
            answered: false,
            dialplan_ended: false,
            reached_agent: false,
            transfer_reason: None,
            message: None,
            assist: false,
            assist_jobs: Vec::new(),
            agent_turn: None,
            agent_jobs: Vec::new(),
            waiting_jobs: Vec::new(),
            aside_speculation: None,
            warm: false,
            whisper: None,
            ended: false,
        }
    }

    /// Turns agent assist on (`transfer.assist`): it costs a recognition per utterance the
    /// caller says to an agent.
    pub fn with_assist(mut self, on: bool) -> Self {
        self.assist = on;
        self
    }

    /// Turns warm transfer on (`transfer.warm`): the agent who answers first hears who calls
    /// and why, then the caller is put through.
    pub fn with_warm_transfer(mut self, on: bool) -> Self {
        self.warm = on;
        self
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The call is over: nothing more will come out but what is queued.
    pub fn is_over(&self) -> bool {
        self.ended
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        self.timers.next()
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn report(&mut self, report: Report) {
        self.outputs.push_back(Output::Report(report));
    }

    fn playing(&self) -> bool {
        self.mark_queued != self.mark_played
    }

    /// Nothing in flight that input must wait for.
    fn idle(&self) -> bool {
        self.speaking.is_none() && self.recognition.is_none() && self.http.is_none()
    }

    fn play(&mut self, pcm: Vec<i16>, now: Instant) {
        let mark = self.id();
        self.mark_queued = mark;
        self.outputs.push_back(Output::Play { pcm, mark });
        if let Some(t) = self.timing.take() {
            self.log_latency(t, now);
        }
    }

    fn stop_playback(&mut self) {
        self.barge = None;
        self.timers.stop(Timer::BargeCommit);
        self.outputs.push_back(Output::StopPlayback);
        self.mark_played = self.mark_queued;
        if let Some(s) = self.speaking.as_mut()
            && !s.stopped
        {
            s.stopped = true;
            let job = s.job;
            self.outputs.push_back(Output::StopSynthesis { job });
        }
    }

    // ---- inputs ----

    /// The call was answered: the dialplan starts.
    pub fn handle_start(&mut self, _now: Instant) {
        let hotline = self.engine.hotline().plan.name.clone();
        self.report(Report::CallStarted {
            call_id: self.call_id.clone(),
            caller: self.caller.clone(),
            hotline,
            dialplan_version: self.dialplan_version,
        });
        self.handle_event(Event::Start, _now);
    }

    /// 20 ms of the caller's audio (played out of the jitter buffer: every tick).
    pub fn handle_audio(&mut self, pcm: &[i16], now: Instant) {
        if self.ended {
            return;
        }
        if self.message.is_some() {
            self.record_message(pcm, now);
            return;
        }
        if self.bridge.is_none() {
            self.whisper = None; // the transfer ended while the agent heard it
        }
        if let Some(w) = self.whisper.as_mut() {
            // Warm transfer: the announcement goes to the agent at the caller's pace; the
            // caller still hears the hold audio.
            let n = w.audio.len().min(pcm.len());
            if n > 0 {
                let frame: Vec<i16> = w.audio.drain(..n).collect();
                self.outputs.push_back(Output::ToAgent(frame));
            } else if w.done {
                self.put_through(now);
            }
            return;
        }
        if let Some(b) = self.bridge.as_mut() {
            // Transferred: the caller talks to the agent (or hears hold audio), not the bot.
            if b.state == BridgeState::Connected {
                b.to_agent += 1;
                self.outputs.push_back(Output::ToAgent(pcm.to_vec()));
                if self.assist {
                    // What the caller says to the agent, for agent assist.
                    self.utterances_aside(pcm, now);
                }
            } else if self.engine.offers_keys_while_waiting() {
                // Waiting: "call me back" or "leave a message" works as well as the key.
                self.utterances_aside(pcm, now);
            }
            return;
        }
        let frame: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
        self.turn.handle_frame(&frame);
        while let Some(event) = self.turn.poll_event() {
            self.on_turn_event(event, now);
        }
    }

    /// 20 ms of the caller's audio when the bot is not in the conversation (talking to the
    /// agent, for assist; waiting, for the queue's keys said aloud).
    fn utterances_aside(&mut self, pcm: &[i16], now: Instant) {
        let frame: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
        self.turn.handle_frame(&frame);
        self.turn_events_aside(now);
    }

    /// The turn detector's events while the bot is not in the conversation. Each utterance
    /// is recognised (queued like any turn) for agent assist once the agent talks, for the
    /// queue's keys while waiting. As in a turn to the bot, a pause starts a speculative
    /// recognition and the end-of-turn model is consulted: a complete turn of finished words
    /// ends 200 ms after the voice instead of after the silence rule (1 s), and its
    /// speculation is its recognition. Nothing else of turn-taking applies: the agent, not
    /// the bot, answers.
    fn turn_events_aside(&mut self, now: Instant) {
        let connected = (self.bridge.as_ref()).is_some_and(|b| b.state == BridgeState::Connected);
        let mut heard_already = Vec::new();
        while let Some(event) = self.turn.poll_event() {
            match event {
                TurnEvent::Consult { id, audio } => {
                    self.outputs.push_back(Output::JudgeTurn { job: id, audio });
                }
                TurnEvent::Pause(audio) => {
                    self.cancel_aside_speculation();
                    let job = self.id();
                    self.aside_speculation = Some(Speculation {
                        job,
                        samples: audio.len(),
                        heard: None,
                        audio: None,
                        likely: false,
                    });
                    self.outputs.push_back(Output::Recognize {
                        job,
                        audio,
                        speculative: true,
                    });
                }
                TurnEvent::Resumed => self.cancel_aside_speculation(),
                TurnEvent::Utterance {
                    audio, silence_ms, ..
                } => {
                    let voice_ended = now
                        .checked_sub(Duration::from_millis(u64::from(silence_ms)))
                        .unwrap_or(now);
                    let adopted = self
                        .aside_speculation
                        .take_if(|s| s.samples == audio.len() && !matches!(s.heard, Some(Err(_))));
                    let job = match adopted {
                        // Nothing said since the pause: the speculation is the utterance's.
                        Some(s) => {
                            if let Some(heard) = s.heard {
                                heard_already.push((s.job, heard));
                            }
                            s.job
                        }
                        None => {
                            self.cancel_aside_speculation();
                            let job = self.id();
                            self.outputs.push_back(Output::Recognize {
                                job,
                                audio,
                                speculative: false,
                            });
                            job
                        }
                    };
                    if connected {
                        self.assist_jobs.push((job, voice_ended));
                    } else {
                        self.waiting_jobs.push(job);
                    }
                }
                _ => {}
            }
        }
        for (job, heard) in heard_already {
            self.handle_recognized(job, heard, now);
        }
    }

    /// The caller went on after the pause (or the utterance was not the pause's): the
    /// speculation in flight is of no use.
    fn cancel_aside_speculation(&mut self) {
        if let Some(s) = self.aside_speculation.take()
            && s.heard.is_none()
        {
            self.outputs
                .push_back(Output::CancelRecognition { job: s.job });
        }
    }

    /// 20 ms of what the agent says to the caller: each utterance is recognised (queued like
    /// any turn) for the desk's live transcript.
    fn agent_frame(&mut self, pcm: &[i16], now: Instant) {
        let Some(turn) = self.agent_turn.as_mut() else {
            return;
        };
        let frame: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
        turn.handle_frame(&frame);
        let mut utterances = Vec::new();
        while let Some(event) = turn.poll_event() {
            if let TurnEvent::Utterance {
                audio, silence_ms, ..
            } = event
            {
                utterances.push((audio, silence_ms));
            }
        }
        for (audio, silence_ms) in utterances {
            let job = self.id();
            let voice_ended = now
                .checked_sub(Duration::from_millis(u64::from(silence_ms)))
                .unwrap_or(now);
            self.agent_jobs.push((job, voice_ended));
            self.outputs.push_back(Output::Recognize {
                job,
                audio,
                speculative: false,
            });
        }
    }

    /// An assist utterance was recognised: what the router and the knowledge base make of
    /// it goes to the agent's desktop (`Report::Assist`).
    fn assist_heard(&mut self, heard: Heard, latency: Duration) {
        let Ok((text, _)) = heard else { return };
        let text = text.trim().to_string();
        if text.is_empty() {
            return;
        }
        let hotline = self.engine.hotline();
        let embedding = hotline.embedder.embed(&text);
        let intent = hotline.router.classify_embedded(&embedding, &text).intent;
        let suggestion = (hotline.kb.best_embedded(&embedding, &text))
            .filter(|m| m.score >= hotline.plan.settings.kb_threshold)
            .and_then(|m| {
                let entry = hotline.kb.entry(&m.id)?;
                Some(crate::report::Suggestion {
                    id: entry.id.clone(),
                    topic: entry.topic.clone(),
                    answer: entry.answer.clone(),
                    score: (m.score * 1000.0).round() / 1000.0,
                })
            });
        let call_id = self.call_id.clone();
        self.report(Report::Assist {
            call_id,
            text,
            intent,
            suggestion,
            latency,
        });
    }

    fn on_turn_event(&mut self, event: TurnEvent, now: Instant) {
        tracing::debug!(
            event = turn_event_name(&event),
            playing = self.playing(),
            listening = self.listening.is_some(),
            "turn-taking"
        );
        match event {
            TurnEvent::SpeechStart => {
                // Speech that starts over a prompt is a backchannel until it barges in.
                self.utterance_counts = !self.playing();
                self.timers.stop(Timer::NoInput);
            }
            TurnEvent::BargeIn => {
                let allowed = self.playing()
                    && self
                        .speaking
                        .as_ref()
                        .map_or(self.listening.is_some(), |s| s.barge_in);
                if allowed && self.will_listen() && self.barge.is_none() {
                    // Held, not dropped: it may be a backchannel.
                    self.outputs.push_back(Output::PausePlayback);
                    self.barge = Some(self.listening);
                    self.utterance_counts = true;
                    self.timers.set(Timer::BargeCommit, now + BARGE_COMMIT);
                }
            }
            TurnEvent::Pause(audio) => {
                self.cancel_speculation();
                if self.utterance_counts && self.will_listen() && self.recognition.is_none() {
                    let job = self.id();
                    self.speculation = Some(Speculation {
                        job,
                        samples: audio.len(),
                        heard: None,
                        audio: Some(audio.clone()),
                        likely: false,
                    });
                    self.outputs.push_back(Output::Recognize {
                        job,
                        audio,
                        speculative: true,
                    });
                }
            }
            TurnEvent::Resumed => self.cancel_speculation(),
            TurnEvent::LikelyComplete => {
                if let Some(s) = self.speculation.as_mut() {
                    s.likely = true;
                }
                self.recognise_if_likely();
            }
            TurnEvent::Consult { id, audio } => {
                if self.utterance_counts {
                    self.outputs.push_back(Output::JudgeTurn { job: id, audio });
                }
            }
            TurnEvent::Utterance {
                audio,
                ended_by,
                silence_ms,
            } => {
                if !self.utterance_counts {
                    // Spoken over a prompt that did not stop: a backchannel.
                    tracing::debug!("utterance over the prompt ignored (no barge-in)");
                    return;
                }
                let u = Utterance {
                    audio,
                    voice_ended: now
                        .checked_sub(Duration::from_millis(silence_ms as u64))
                        .unwrap_or(now),
                    endpoint: now,
                    ended_by,
                };
                if self.listening.is_some() && self.idle() {
                    self.recognise(u, now);
                } else {
                    // Said while the bot is busy: kept (the latest) for when it listens.
                    self.pending = Some(u);
                }
            }
            TurnEvent::TooShort => self.resume_after_backchannel(),
        }
    }

    /// The speculation in flight is stale (the caller went on): cancel it.
    fn cancel_speculation(&mut self) {
        if self.awaiting_speculation {
            return; // it is the turn's recognition now
        }
        if let Some(s) = self.speculation.take()
            && s.heard.is_none()
        {
            self.outputs
                .push_back(Output::CancelRecognition { job: s.job });
        }
    }

    /// The caller really interrupted: the held prompt and the synthesis behind it go.
    fn commit_barge_in(&mut self) {
        if self.barge.take().is_some() {
            self.timers.stop(Timer::BargeCommit);
            self.stop_playback();
            let call_id = self.call_id.clone();
            self.report(Report::BargeIn {
                call_id,
                resumed: false,
            });
        }
    }

    /// It was a backchannel, a cough or noise: the held prompt goes on where it was.
    fn resume_after_backchannel(&mut self) {
        if let Some(listening) = self.barge.take() {
            self.timers.stop(Timer::BargeCommit);
            self.outputs.push_back(Output::ResumePlayback);
            if self.listening.is_none() {
                self.listening = listening;
            }
            let call_id = self.call_id.clone();
            self.report(Report::BargeIn {
                call_id,
                resumed: true,
            });
        }
    }

    /// The model expects the pause's audio to be the whole turn: if its speculation was
    /// declined (the engine is busy), recognise it now, in the queue like any turn, rather
    /// than wait for the silence rule.
    fn recognise_if_likely(&mut self) {
        let job = self.next_id + 1;
        if let Some(s) = self.speculation.as_mut()
            && s.likely
            && matches!(s.heard, Some(Err(_)))
            && let Some(audio) = s.audio.take()
        {
            self.next_id = job;
            s.job = job;
            s.heard = None;
            self.outputs.push_back(Output::Recognize {
                job,
                audio,
                speculative: false,
            });
        }
    }

    /// The dialplan is listening, or will once the reply being spoken is done.
    fn will_listen(&self) -> bool {
        self.listening.is_some()
            || self
                .speaking
                .as_ref()
                .is_some_and(|s| s.rest.iter().any(|a| matches!(a, Action::Listen { .. })))
    }

    /// The agent answered (and, on a warm transfer, heard the announcement): the caller and
    /// the agent talk.
    fn put_through(&mut self, now: Instant) {
        self.whisper = None;
        self.timers.stop(Timer::Whisper);
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        b.state = BridgeState::Connected;
        self.reached_agent = true;
        if self.assist {
            // Quiet rooms and headsets: the default tuning of the caller's side.
            self.agent_turn = Some(Endpointer::new(EndpointerConfig::default()));
        }
        self.stop_playback(); // the hold audio
        self.transfer_report(TransferStatus::Connected, Some(String::new()), now);
    }

    /// The engine's step for a waiting caller's key or words: if it took them out of the
    /// transfer (to a callback, a message), the wait ends and its node speaks.
    fn leave_queue(&mut self, step: Step, why: String, now: Instant) {
        if self.engine.transferred() {
            return;
        }
        self.transfer_report(TransferStatus::Ended, Some(why), now);
        self.bridge = None;
        self.waiting_jobs.clear();
        self.whisper = None;
        self.timers.stop(Timer::Whisper);
        self.stop_playback(); // the hold audio
        self.outputs.push_back(Output::CancelTransfer);
        self.log(&step);
        self.apply(step.actions, now);
        self.after_audio(now);
    }

    /// A keypad digit (RFC 4733, SIP INFO or in-band).
    pub fn handle_digit(&mut self, digit: char, now: Instant) {
        if self.ended {
            return;
        }
        if self.message.is_some() {
            if digit == '#' {
                self.end_message(now, true);
            }
            return;
        }
        if let Some(b) = &self.bridge {
            if b.state == BridgeState::Connected {
                self.outputs.push_back(Output::AgentDigit(digit));
                return;
            }
            // Waiting for an agent: a key the transfer offers takes the caller out of the
            // queue to its node (others do nothing).
            let step = self.engine.handle(Event::Dtmf(digit.to_string()));
            self.leave_queue(
                step,
                format!("the caller pressed {digit} while waiting"),
                now,
            );
            return;
        }
        let Some(l) = self.listening else {
            return;
        };
        let barge_in = self.speaking.as_ref().is_none_or(|s| s.barge_in);
        if self.playing() && barge_in {
            self.stop_playback();
        }
        self.timers.stop(Timer::NoInput);
        if digit != '#' {
            self.digits.push(digit);
        }
        if digit == '#' || self.digits.len() >= l.dtmf_max.max(1) {
            self.submit_digits(now);
        } else {
            self.timers
                .set(Timer::InterDigit, now + INTER_DIGIT_TIMEOUT);
        }
    }

    fn submit_digits(&mut self, now: Instant) {
        let digits = std::mem::take(&mut self.digits);
        self.timers.stop(Timer::InterDigit);
        self.listening = None;
        self.handle_event(Event::Dtmf(digits), now);
    }

    /// Everything queued before `mark` has been sent to the caller.
    pub fn handle_played_out(&mut self, mark: u64, now: Instant) {
        if mark > self.mark_played && mark <= self.mark_queued {
            self.mark_played = mark;
        }
        if let Some(b) = &self.bridge
            && b.state == BridgeState::Connected
        {
            self.relay_queued = self.mark_queued.saturating_sub(self.mark_played);
        }
        if self.playing() || self.ended {
            return;
        }
        // The caller began before the prompt ended and is still going: a real turn.
        if self.turn.in_speech() {
            self.utterance_counts = true;
        }
        if self
            .bridge
            .as_ref()
            .is_some_and(|b| b.state == BridgeState::Dialling)
        {
            self.queue_hold_audio(now);
            return;
        }
        self.after_audio(now);
    }

    /// The reply has played out and nothing is in flight: hang up if asked; start the
    /// no-input timer if listening.
    fn after_audio(&mut self, now: Instant) {
        if self.playing() || !self.idle() {
            return;
        }
        // Waiting for an agent (an announcement just ended): the hold audio again.
        if (self.bridge.as_ref()).is_some_and(|b| b.state == BridgeState::Dialling) {
            self.queue_hold_audio(now);
            return;
        }
        if let Some(reason) = self.end_after_audio.take() {
            self.dialplan_ended = true;
            self.hang_up(reason);
            return;
        }
        if let Some(l) = self.listening
            && !self.turn.in_speech()
            && self.digits.is_empty()
            && self.timers.get(Timer::NoInput).is_none()
        {
            self.timers.set(Timer::NoInput, now + l.timeout);
        }
    }

    /// Recognition finished (or failed, or was declined).
    pub fn handle_recognized(&mut self, job: u64, heard: Heard, now: Instant) {
        if let Some(s) = self.aside_speculation.take_if(|s| s.job == job) {
            if self.bridge.is_none() {
                return; // the transfer is over: of no use, and not the bot's turn
            }
            // Words that read as finished let the end-of-turn model end the utterance now.
            if let Ok((text, _)) = &heard {
                self.turn
                    .handle_transcript(s.samples, text, !text.trim().is_empty());
            }
            self.aside_speculation = Some(Speculation {
                heard: Some(heard),
                ..s
            });
            self.turn_events_aside(now);
            return;
        }
        if let Some(i) = self.assist_jobs.iter().position(|&(j, _)| j == job) {
            let (_, voice_ended) = self.assist_jobs.swap_remove(i);
            if !self.ended {
                self.assist_heard(heard, now.saturating_duration_since(voice_ended));
            }
            return;
        }
        if let Some(i) = self.waiting_jobs.iter().position(|&j| j == job) {
            self.waiting_jobs.swap_remove(i);
            let still_waiting = self
                .bridge
                .as_ref()
                .is_some_and(|b| b.state != BridgeState::Connected);
            if let (false, true, Ok((text, confidence))) = (self.ended, still_waiting, heard) {
                let why = format!("the caller said \"{}\" while waiting", text.trim());
                let step = self.engine.handle(Event::Speech { text, confidence });
                self.leave_queue(step, why, now);
            }
            return;
        }
        if let Some(i) = self.agent_jobs.iter().position(|&(j, _)| j == job) {
            let (_, voice_ended) = self.agent_jobs.swap_remove(i);
            if let (false, Ok((text, _))) = (self.ended, heard) {
                let text = text.trim().to_string();
                if !text.is_empty() {
                    self.report(Report::AgentSaid {
                        call_id: self.call_id.clone(),
                        text,
                        latency: now.saturating_duration_since(voice_ended),
                    });
                }
            }
            return;
        }
        if let Some(s) = self.speculation.as_mut()
            && s.job == job
        {
            if let Ok((text, _)) = &heard {
                s.audio = None;
                let understood = self.engine.understands(text);
                self.turn.handle_transcript(s.samples, text, understood);
            }
            s.heard = Some(heard.clone());
            self.recognise_if_likely();
            while let Some(e) = self.turn.poll_event() {
                self.on_turn_event(e, now);
            }
            if self.awaiting_speculation {
                self.awaiting_speculation = false;
                self.recognition = None;
                self.timers.stop(Timer::Recognition);
                match heard {
                    // Declined or failed as a speculation: recognise the turn for real.
                    Err(_) => {
                        if let Some(u) = self.pending.take() {
                            self.speculation = None;
                            self.recognise(u, now);
                        }
                    }
                    Ok(h) => {
                        self.pending = None;
                        if let Some(t) = self.timing.as_mut() {
                            t.speculative = true;
                        }
                        self.speculation = None;
                        self.on_heard(Ok(h), now);
                    }
                }
            }
            return;
        }
        if self.recognition == Some(job) {
            self.recognition = None;
            self.timers.stop(Timer::Recognition);
            self.on_heard(heard, now);
        }
    }

    /// A warm transfer's announcement is playing to the agent who answered (the caller
    /// is not put through yet).
    pub fn is_announcing_to_agent(&self) -> bool {
        self.whisper.is_some()
    }

    /// The end-of-turn model's probability that consultation `job` is a complete turn.
    pub fn handle_verdict(&mut self, job: u64, complete: f32, now: Instant) {
        self.turn.handle_verdict(job, complete);
        // Transferred: a complete turn is an utterance for agent assist or, waiting, for the
        // queue's keys; the bot's turn-taking is not in the conversation.
        if self.bridge.is_some() {
            self.turn_events_aside(now);
            return;
        }
        while let Some(e) = self.turn.poll_event() {
            self.on_turn_event(e, now);
        }
    }

    /// Synthesis progress of reply `job`.
    pub fn handle_synthesized(&mut self, job: u64, synthesis: Synthesis, now: Instant) {
        if let Some(w) = self.whisper.as_mut().filter(|w| w.job == job) {
            match synthesis {
                Synthesis::Clause(pcm) => w.audio.extend(pcm),
                Synthesis::Done => w.done = true,
            }
            return;
        }
        let Some(s) = self.speaking.as_ref().filter(|s| s.job == job) else {
            return; // a reply given up on
        };
        match synthesis {
            Synthesis::Clause(pcm) => {
                if !s.stopped && !self.ended {
                    self.play(pcm, now);
                }
            }
            Synthesis::Done => self.synthesis_done(now),
        }
    }

    fn synthesis_done(&mut self, now: Instant) {
        self.timers.stop(Timer::Synthesis);
        let Some(s) = self.speaking.take() else {
            return;
        };
        // Synthesis produced nothing (failed, or cut by barge-in): no latency to report.
        self.timing = None;
        self.flush_decision(None);
        self.apply(s.rest, now);
        self.after_audio(now);
    }

    /// A backend request finished.
    pub fn handle_http(&mut self, job: u64, result: Result<(u16, String), String>, now: Instant) {
        if self.http != Some(job) {
            return;
        }
        self.http = None;
        let event = match result {
            Ok((status, body)) => Event::HttpResponse { status, body },
            Err(e) => Event::HttpFailed(e),
        };
        self.handle_event(event, now);
    }

    /// The transfer's agent leg changed.
    pub fn handle_agent(&mut self, event: AgentEvent, now: Instant) {
        if self.ended {
            return;
        }
        let Some(b) = self.bridge.as_mut() else {
            return;
        };
        match event {
            AgentEvent::Dialling { uri } => {
                b.uri = uri;
                self.transfer_report(TransferStatus::Dialling, None, now);
            }
            AgentEvent::Ringing => {}
            AgentEvent::Answered if self.warm && b.state == BridgeState::Dialling => {
                // The agent first hears who calls and why; the caller hears the hold audio
                // until it has played (`handle_audio` paces it, `put_through` follows).
                let reason = b.reason.clone();
                self.reached_agent = true;
                let job = self.id();
                let plan = &self.engine.hotline().plan;
                let text = Phrase::WarmTransfer
                    .text(plan)
                    .replace("{{reason}}", &reason);
                self.whisper = Some(Whisper {
                    job,
                    audio: VecDeque::new(),
                    done: false,
                });
                self.timers.set(Timer::Whisper, now + WHISPER_LIMIT);
                self.outputs.push_back(Output::Synthesize {
                    job,
                    texts: vec![text],
                });
            }
            AgentEvent::Answered => self.put_through(now),
            AgentEvent::Audio(pcm) => {
                if b.state != BridgeState::Connected {
                    return;
                }
                // Transcribed whether or not the relay has room: the words were said.
                self.agent_frame(&pcm, now);
                if self.relay_queued < MAX_RELAY_FRAMES {
                    let b = self.bridge.as_mut().expect("checked above");
                    b.to_caller += 1;
                    self.relay_queued += 1;
                    let mark = self.id();
                    self.mark_queued = mark;
                    self.outputs.push_back(Output::Play { pcm, mark });
                }
            }
            AgentEvent::Queued {
                position,
                estimated_wait,
            } => {
                // Between chimes: not over a reply still being spoken.
                if b.state != BridgeState::Dialling || self.speaking.is_some() {
                    return;
                }
                let mut text =
                    queue_announcement(&self.engine.hotline().plan, position, estimated_wait);
                if let Some(options) = self.engine.transfer_options() {
                    text = format!("{text} {options}");
                }
                self.stop_playback(); // the hold audio, until the announcement has played
                self.apply(
                    vec![Action::Say {
                        text,
                        barge_in: false,
                    }],
                    now,
                );
            }
            AgentEvent::Lost { requeued, why } => {
                // Lost while a warm transfer's announcement plays counts as lost mid-call:
                // the driver has hung the agent's leg up either way.
                let whispering = self.whisper.take().is_some();
                self.timers.stop(Timer::Whisper);
                if b.state != BridgeState::Connected && !whispering {
                    return;
                }
                self.transfer_report(TransferStatus::Failed, Some(why.clone()), now);
                self.stop_playback(); // the agent's last words still queued
                let plan = &self.engine.hotline().plan;
                let phrase = if requeued {
                    Phrase::AgentLostHold
                } else {
                    Phrase::AgentLost
                };
                let apology = Action::Say {
                    text: phrase.text(plan).to_string(),
                    barge_in: false,
                };
                // Never dead air: the apology at once, then the hold audio (back in the
                // queue; the driver rings the next agent) or the transfer's fallback, spoken
                // as one reply.
                if requeued {
                    if let Some(b) = self.bridge.as_mut() {
                        b.state = BridgeState::Dialling;
                        b.rejoin_queue = true;
                    }
                    self.apply(vec![apology], now);
                } else {
                    self.bridge = None;
                    let step = self.engine.handle(Event::TransferFailed(why));
                    self.log(&step);
                    self.apply(std::iter::once(apology).chain(step.actions).collect(), now);
                    self.after_audio(now);
                }
            }
            AgentEvent::Failed(why) | AgentEvent::Ended(why)
                if b.state == BridgeState::Dialling =>
            {
                // (An agent who hangs up during a warm transfer's announcement included.)
                self.whisper = None;
                self.timers.stop(Timer::Whisper);
                self.transfer_report(TransferStatus::Failed, Some(why.clone()), now);
                self.bridge = None;
                self.stop_playback();
                // Busy, no answer, unreachable: back to the dialplan's fallback.
                self.handle_event(Event::TransferFailed(why), now);
            }
            AgentEvent::Failed(why) | AgentEvent::Ended(why) => {
                self.transfer_report(TransferStatus::Ended, Some(why.clone()), now);
                self.bridge = None;
                self.hang_up(format!("transferred call ended: {why}"));
            }
        }
    }

    fn transfer_report(&mut self, status: TransferStatus, why: Option<String>, now: Instant) {
        let Some(b) = self.bridge.as_ref() else {
            return;
        };
        let report = Report::Transfer {
            call_id: self.call_id.clone(),
            status,
            agent: b.uri.clone(),
            why: why.unwrap_or_else(|| b.reason.clone()),
            after: now.saturating_duration_since(b.started),
            frames_to_agent: b.to_agent,
            frames_to_caller: b.to_caller,
        };
        self.report(report);
    }

    /// 20 ms of a message: kept after the tone; the message ends after a silence.
    fn record_message(&mut self, pcm: &[i16], now: Instant) {
        let Some(m) = self.message.as_mut() else {
            return;
        };
        if now < m.from {
            return;
        }
        m.pcm.extend_from_slice(pcm);
        let energy = pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        if (energy / pcm.len().max(1) as f64).sqrt() > MESSAGE_VOICED_RMS {
            m.last_voiced = Some(now);
        }
        let over = match m.last_voiced {
            Some(heard) => now >= heard + MESSAGE_SILENCE,
            None => now >= m.from + MESSAGE_NOTHING,
        };
        if over {
            self.end_message(now, true);
        }
    }

    /// The message is over (a silence, `#`, its longest, or the caller hung up): saved if the
    /// caller said anything (up to half a second after they were last heard), and the
    /// dialplan goes on (`tell`; not once the caller has hung up).
    fn end_message(&mut self, now: Instant, tell: bool) {
        let Some(mut m) = self.message.take() else {
            return;
        };
        self.timers.stop(Timer::Message);
        let mut ms = 0;
        if let Some(heard) = m.last_voiced {
            let kept = heard.saturating_duration_since(m.from) + Duration::from_millis(500);
            m.pcm.truncate(8 * kept.as_millis() as usize);
            ms = m.pcm.len() as u64 / 8;
            self.outputs.push_back(Output::SaveMessage {
                queue: m.queue,
                pcm: m.pcm,
            });
        }
        if tell {
            self.handle_event(Event::MessageRecorded { ms }, now);
        }
    }

    /// The caller hung up (or the call's media ended).
    pub fn handle_hangup(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        self.end_message(now, false);
        if self.bridge.is_some() {
            self.outputs.push_back(Output::HangupAgent);
            self.transfer_report(TransferStatus::Ended, Some("caller hung up".into()), now);
            self.bridge = None;
        }
        self.finish();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in TIMERS {
            if self.ended || self.timers.get(t).is_none_or(|at| at > now) {
                continue;
            }
            self.timers.stop(t);
            match t {
                Timer::NoInput => {
                    if self.listening.take().is_some() {
                        self.handle_event(Event::NoInput, now);
                    }
                }
                Timer::InterDigit => {
                    if self.listening.is_some() && !self.digits.is_empty() {
                        self.submit_digits(now);
                    }
                }
                Timer::Recognition => {
                    if self.recognition.take().is_some() {
                        self.awaiting_speculation = false;
                        self.speculation = None;
                        self.on_heard(Err("recognition took too long".into()), now);
                    }
                }
                Timer::Message => self.end_message(now, true),
                Timer::Whisper => {
                    if self.whisper.is_some() {
                        self.put_through(now);
                    }
                }
                Timer::BargeCommit => {
                    // Still talking: a request, not a backchannel.
                    if self.turn.voice_active() {
                        self.commit_barge_in();
                    }
                }
                Timer::Synthesis => {
                    if let Some(s) = self.speaking.as_ref() {
                        let job = s.job;
                        self.outputs.push_back(Output::StopSynthesis { job });
                        self.synthesis_done(now);
                    }
                }
            }
        }
    }

    // ---- the turn ----

    /// The caller's turn is over: the speculative result if it covered exactly this audio,
    /// else recognition now.
    fn recognise(&mut self, u: Utterance, now: Instant) {
        self.listening = None;
        self.timers.stop(Timer::NoInput);
        self.timing = Some(TurnTiming {
            voice_ended: u.voice_ended,
            endpoint: u.endpoint,
            ended_by: u.ended_by,
            speculative: false,
            asr_done: None,
            decided: None,
        });
        let job = self.id();
        self.recognition = Some(job);
        self.timers.set(
            Timer::Recognition,
            now + recognition_deadline(u.audio.len()),
        );
        if let Some(s) = self.speculation.as_mut()
            && s.samples == u.audio.len()
        {
            match s.heard.take() {
                Some(Ok(heard)) => {
                    self.speculation = None;
                    self.recognition = None;
                    self.timers.stop(Timer::Recognition);
                    if let Some(t) = self.timing.as_mut() {
                        t.speculative = true;
                    }
                    self.on_heard(Ok(heard), now);
                    return;
                }
                // Still running: its result will be this turn's.
                None => {
                    self.awaiting_speculation = true;
                    self.pending = Some(u);
                    return;
                }
                Some(Err(_)) => {}
            }
        }
        self.cancel_speculation();
        self.outputs.push_back(Output::Recognize {
            job,
            audio: u.audio,
            speculative: false,
        });
    }

    fn on_heard(&mut self, heard: Heard, now: Instant) {
        if self.barge.is_some() {
            match &heard {
                // A short sound over the prompt that is no request: a backchannel, a cough,
                // noise (Whisper makes words of those, so the hotline must understand them).
                Ok((text, _)) if is_backchannel(text) || !self.engine.understands(text) => {
                    tracing::debug!(%text, "backchannel over the prompt");
                    self.timing = None;
                    self.resume_after_backchannel();
                    return;
                }
                _ => self.commit_barge_in(),
            }
        }
        match heard {
            Ok((text, confidence)) if !text.trim().is_empty() => {
                if let Some(t) = self.timing.as_mut() {
                    t.asr_done = Some(now);
                }
                self.handle_event(Event::Speech { text, confidence }, now);
            }
            Ok(_) => {
                self.timing = None;
                self.handle_event(Event::NoInput, now);
            }
            Err(why) => {
                // Recognition failed or the queue is too long: the keypad still works; say so
                // rather than go silent.
                self.timing = None;
                self.report(Report::AsrUnavailable {
                    call_id: self.call_id.clone(),
                    why,
                });
                let (timeout_ms, dtmf_max) = self.last_listen;
                self.apply(
                    vec![
                        Action::Say {
                            text: Phrase::KeypadOffer
                                .text(&self.engine.hotline().plan)
                                .to_string(),
                            barge_in: true,
                        },
                        Action::Listen {
                            timeout_ms,
                            dtmf_max,
                            expect: "keypad".into(),
                            digits_min: None,
                        },
                    ],
                    now,
                );
            }
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        if self.ended {
            return;
        }
        let step = self.engine.handle(event);
        if let Some(t) = self.timing.as_mut() {
            t.decided.get_or_insert(now);
        }
        self.log(&step);
        self.apply(step.actions, now);
        self.after_audio(now);
    }

    /// A turn's decision record: reported now, or held for its latency when it speaks.
    fn log(&mut self, step: &Step) {
        let Some(d) = &step.decision else { return };
        let turn = crate::dialplan::sim::BotTurn {
            decision: d.clone(),
            actions: step.actions.clone(),
        };
        let mut json = crate::dialplan::sim::to_json(&turn);
        json["call"] = serde_json::Value::String(self.call_id.clone());
        self.answered |= json["decision"] == "answer";
        // The bot brought the call to its end (a goodbye, then perhaps a survey the caller
        // hangs up on): finished, not abandoned.
        self.dialplan_ended |= d.decision == crate::dialplan::engine::DecisionKind::End
            && !matches!(d.input.as_str(), "(hangup)" | "(transfer failed)");
        self.flush_decision(None);
        let speaks = step.actions.iter().any(|a| matches!(a, Action::Say { .. }));
        if self.timing.is_some() && speaks {
            self.pending_decision = Some(json);
        } else {
            self.record_decision(json);
        }
    }

    fn flush_decision(&mut self, latency: Option<serde_json::Value>) {
        if let Some(mut json) = self.pending_decision.take() {
            if let Some(l) = latency {
                json["latency"] = l;
            }
            self.record_decision(json);
        }
    }

    fn record_decision(&mut self, record: serde_json::Value) {
        let transcript = self.engine.transcript().to_vec();
        self.report(Report::Turn {
            call_id: self.call_id.clone(),
            record,
            transcript,
        });
    }

    /// The reply of a timed turn is queued: its first packet leaves on the next tick.
    fn log_latency(&mut self, t: TurnTiming, now: Instant) {
        let asr = t.asr_done.unwrap_or(t.endpoint);
        let decided = t.decided.unwrap_or(asr);
        let latency = TurnLatency {
            end_of_turn: t.endpoint.saturating_duration_since(t.voice_ended),
            asr: asr.saturating_duration_since(t.endpoint),
            decide: decided.saturating_duration_since(asr),
            reply_audio: now.saturating_duration_since(decided),
            speculative: t.speculative,
            ended_by: t.ended_by,
        };
        let json = latency.to_json(&self.call_id);
        self.report(Report::Latency {
            call_id: self.call_id.clone(),
            latency,
        });
        self.flush_decision(Some(json));
    }

    /// Runs the dialplan's actions in order; leading Say actions are synthesised first and
    /// the rest run when that is done.
    fn apply(&mut self, actions: Vec<Action>, now: Instant) {
        let mut texts = Vec::new();
        let mut barge_in = true;
        let mut rest = actions.into_iter().peekable();
        while let Some(Action::Say { .. }) = rest.peek() {
            if let Some(Action::Say { text, barge_in: b }) = rest.next() {
                texts.push(text);
                barge_in &= b;
            }
        }
        let rest: Vec<Action> = rest.collect();
        if !texts.is_empty() {
            let job = self.id();
            self.speaking = Some(Speaking {
                job,
                barge_in,
                rest,
                stopped: false,
            });
            self.timers.set(Timer::Synthesis, now + SYNTHESIS_DEADLINE);
            self.outputs.push_back(Output::Synthesize { job, texts });
            return;
        }
        for action in rest {
            match action {
                Action::Say { .. } => {}
                Action::Callback {
                    queue,
                    number,
                    reason,
                    transcript,
                    priority,
                } => {
                    let request = crate::call::callback::CallbackRequest {
                        id: format!("callback-{}", self.call_id),
                        queue,
                        number,
                        reason,
                        transcript,
                        priority,
                    };
                    self.outputs.push_back(Output::Callback(request));
                }
                Action::RecordMessage { queue, max_ms } => {
                    let tone: Vec<i16> = (0..8 * MESSAGE_TONE.as_millis() as usize)
                        .map(|i| {
                            let t = i as f32 / 8000.0;
                            (0.25 * 32767.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin())
                                as i16
                        })
                        .collect();
                    self.play(tone, now);
                    let from = now + MESSAGE_TONE;
                    self.message = Some(Message {
                        queue,
                        pcm: Vec::new(),
                        from,
                        last_voiced: None,
                    });
                    self.timers
                        .set(Timer::Message, from + Duration::from_millis(max_ms));
                }
                Action::Listen {
                    timeout_ms,
                    dtmf_max,
                    digits_min,
                    ..
                } => {
                    self.last_listen = (timeout_ms, dtmf_max);
                    self.listening = Some(Listening {
                        timeout: Duration::from_millis(timeout_ms),
                        dtmf_max,
                    });
                    self.turn.expect(match digits_min {
                        Some(min) => Expectation::Digits { min },
                        None => Expectation::Speech,
                    });
                    // Said while the bot was busy: recognised now.
                    if self.idle()
                        && !self.awaiting_speculation
                        && let Some(u) = self.pending.take()
                    {
                        self.recognise(u, now);
                    }
                }
                Action::Http {
                    method,
                    url,
                    body,
                    timeout_ms,
                } => {
                    let job = self.id();
                    self.http = Some(job);
                    self.outputs.push_back(Output::Http {
                        job,
                        method,
                        url,
                        body,
                        timeout: Duration::from_millis(timeout_ms),
                    });
                }
                Action::Transfer {
                    target,
                    reason,
                    transcript,
                    priority,
                } => {
                    self.transfer_reason = Some(reason.clone());
                    self.report(Report::TransferRequested {
                        call_id: self.call_id.clone(),
                        reason: reason.clone(),
                    });
                    self.bridge = Some(Bridge {
                        state: BridgeState::Dialling,
                        uri: target.clone(),
                        reason: reason.clone(),
                        started: now,
                        to_agent: 0,
                        to_caller: 0,
                        hold: HoldAudio::default(),
                        rejoin_queue: false,
                    });
                    self.outputs.push_back(Output::Transfer {
                        target,
                        reason,
                        transcript,
                        priority,
                    });
                }
                Action::Hangup { reason } => {
                    self.end_after_audio = Some(if reason.is_empty() {
                        "dialplan hung up".into()
                    } else {
                        reason
                    });
                }
            }
        }
        if self
            .bridge
            .as_ref()
            .is_some_and(|b| b.state == BridgeState::Dialling)
            && !self.playing()
        {
            self.queue_hold_audio(now);
        }
    }

    /// Hold audio while the agent's phone rings: 200 ms at a time, one chunk ahead.
    fn queue_hold_audio(&mut self, now: Instant) {
        let idle = self.idle();
        if let Some(b) = self.bridge.as_mut()
            && idle
            && std::mem::take(&mut b.rejoin_queue)
        {
            self.outputs.push_back(Output::RejoinQueue);
        }
        for _ in 0..2 {
            let Some(b) = self.bridge.as_mut() else {
                return;
            };
            let pcm = b.hold.next_chunk();
            let mark = self.id();
            self.mark_queued = mark;
            self.outputs.push_back(Output::Play { pcm, mark });
        }
        let _ = now;
    }

    fn hang_up(&mut self, reason: String) {
        self.outputs.push_back(Output::Hangup { reason });
        self.finish();
    }

    /// The call is over: the outcome, decided here.
    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.flush_decision(None);
        self.ended = true;
        let outcome = if self.reached_agent {
            Outcome::Transferred
        } else if self.transfer_reason.is_some() {
            Outcome::Failed
        } else if self.answered || self.dialplan_ended {
            Outcome::SelfServed
        } else {
            Outcome::Abandoned
        };
        let (call_id, transfer_reason) = (self.call_id.clone(), self.transfer_reason.clone());
        let hotline = self.engine.hotline().plan.name.clone();
        self.report(Report::CallEnded {
            call_id,
            hotline,
            outcome,
            transfer_reason,
        });
    }
}

fn turn_event_name(e: &TurnEvent) -> &'static str {
    match e {
        TurnEvent::SpeechStart => "speech start",
        TurnEvent::BargeIn => "barge-in",
        TurnEvent::Pause(_) => "pause",
        TurnEvent::Consult { .. } => "consult",
        TurnEvent::Utterance { .. } => "utterance",
        TurnEvent::TooShort => "too short",
        TurnEvent::LikelyComplete => "likely complete",
        TurnEvent::Resumed => "resumed",
    }
}

/// What a caller waiting in a queue hears: their place, and the estimated wait once the
/// queue has a history (rounded up to whole minutes; "less than a minute" below one).
pub fn queue_announcement(
    plan: &crate::dialplan::model::Dialplan,
    position: usize,
    estimated_wait: Option<Duration>,
) -> String {
    use crate::dialplan::model::Language;
    let wait = estimated_wait.map(|w| {
        let minutes = w.as_secs().div_ceil(60);
        match (plan.language, minutes) {
            (Language::English, 0) => "less than a minute".to_string(),
            (Language::English, 1) => "about one minute".to_string(),
            (Language::English, m) => format!("about {m} minutes"),
            (Language::Mandarin, 0) => "不到一分钟".to_string(),
            (Language::Mandarin, m) => format!("大约{m}分钟"),
        }
    });
    let (phrase, wait) = match wait {
        Some(w) => (Phrase::QueuePlaceAndWait, w),
        None => (Phrase::QueuePlace, String::new()),
    };
    (phrase.text(plan))
        .replace("{{position}}", &position.to_string())
        .replace("{{wait}}", &wait)
}

/// A gentle repeating chime for callers waiting for an agent (three soft notes, a pause):
/// callers hear that the line is alive without mistaking it for a ringback or a prompt.
#[derive(Debug, Default)]
pub struct HoldAudio {
    position: usize,
}

impl HoldAudio {
    const NOTES: [f32; 3] = [523.25, 659.25, 783.99]; // C5 E5 G5
    const NOTE: usize = 8 * 250;
    const PAUSE: usize = 8 * 1250;
    const CHUNK: usize = 8 * 200;

    fn sample(&self, i: usize) -> i16 {
        let cycle = Self::NOTES.len() * Self::NOTE + Self::PAUSE;
        let i = i % cycle;
        let note = i / Self::NOTE;
        if note >= Self::NOTES.len() {
            return 0;
        }
        let within = (i % Self::NOTE) as f32;
        // Soft attack and decay so notes do not click.
        let envelope = (within / 80.0).min(1.0) * (1.0 - within / Self::NOTE as f32);
        let t = i as f32 / 8000.0;
        (0.12 * envelope * (2.0 * std::f32::consts::PI * Self::NOTES[note] * t).sin() * 32767.0)
            as i16
    }

    /// The next 200 ms.
    pub fn next_chunk(&mut self) -> Vec<i16> {
        let chunk = (0..Self::CHUNK)
            .map(|k| self.sample(self.position + k))
            .collect();
        self.position += Self::CHUNK;
        chunk
    }
}

#[cfg(test)]
mod tests {
    //! Every rule on a fake clock: a harness plays the media (queued audio plays out in real
    //! length, marks reported when it has), the synthesiser (one second per text) and lets
    //! each test answer recognition, verdicts, backends and the agent leg itself.

    use super::*;
    use crate::call::turn::energy::{Endpointer, EndpointerConfig};
    use crate::call::turn::model::{LoudIsSpeech, ModelTurn, TurnConfig};
    use crate::dialplan::registry::HotlineRegistry;
    use crate::nlu::intent::BagOfWords;
    use std::sync::Arc;

    const PLAN: &str = r#"name: session-test
slots:
  order_number: { type: digits, min_digits: 6, max_digits: 10 }
intents:
  hello: { examples: [hello there, hi, good morning] }
  agent: { examples: [talk to a person, an agent please, a human please], keywords: [agent] }
handlers: { no_input: bye, no_match: bye, agent: to_agent }
start: ask
nodes:
  ask:
    ask: { prompt: "Say something.", dtmf: 4 }
    next: number
  number:
    ask: { prompt: "Your order number?", slot: order_number, dtmf: 10 }
    next: bye
  to_agent:
    transfer: { queue: general, reason: "caller asked", say: "Connecting you.", fallback: busy }
  busy:
    say: "Nobody is free."
    next: bye
  bye: { hangup: "Bye." }
"#;

    struct Harness {
        s: CallSession,
        now: Instant,
        /// (mark, when it has played out).
        playing: VecDeque<(u64, Instant)>,
        queue_end: Instant,
        /// Outputs seen, in order (Play audio replaced by its length).
        log: Vec<Output>,
        /// Synthesis jobs to answer automatically (one second of audio per text).
        auto_synthesis: bool,
        /// Playback held since.
        paused_at: Option<Instant>,
    }

    fn detector(model: bool) -> Box<dyn TurnDetector> {
        if model {
            Box::new(ModelTurn::new(LoudIsSpeech, TurnConfig::default()))
        } else {
            Box::new(Endpointer::new(EndpointerConfig::default()))
        }
    }

    fn harness(model: bool) -> Harness {
        harness_on(PLAN, model)
    }

    fn harness_on(plan: &str, model: bool) -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "voxnav-session-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.yaml");
        std::fs::write(&file, plan).unwrap();
        let registry = HotlineRegistry::load(&file, Arc::new(BagOfWords)).unwrap();
        let engine = CallEngine::new(registry.current(), Default::default());
        let now = Instant::now();
        let mut h = Harness {
            s: CallSession::new("c1", "<sip:alice@192.0.2.1>", engine, 1, detector(model)),
            now,
            playing: VecDeque::new(),
            queue_end: now,
            log: Vec::new(),
            auto_synthesis: true,
            paused_at: None,
        };
        h.s.handle_start(now);
        h.pump();
        h
    }

    impl Harness {
        /// Into the first prompt, the caller talks for 0.8 s and is recognised as `text`.
        fn first_words(&mut self, text: &str) {
            self.wait(1500);
            self.talk(800, true);
            self.wait(300);
            let spec = Harness::recognitions(&self.log)[0].0;
            self.s
                .handle_recognized(spec, Ok((text.into(), 0.9)), self.now);
            self.pump();
        }

        /// Carries out outputs: media and synthesis are simulated, the rest logged.
        fn pump(&mut self) {
            while let Some(out) = self.s.poll_output() {
                match &out {
                    Output::Play { pcm, mark } => {
                        self.queue_end = self.queue_end.max(self.now)
                            + Duration::from_millis(pcm.len() as u64 / 8);
                        self.playing.push_back((*mark, self.queue_end));
                    }
                    Output::StopPlayback => {
                        self.playing.clear();
                        self.queue_end = self.now;
                        self.paused_at = None;
                    }
                    Output::PausePlayback => self.paused_at = Some(self.now),
                    Output::ResumePlayback => {
                        if let Some(at) = self.paused_at.take() {
                            let held = self.now - at;
                            for (_, end) in self.playing.iter_mut() {
                                *end += held;
                            }
                            self.queue_end += held;
                        }
                    }
                    Output::Synthesize { job, texts } if self.auto_synthesis => {
                        for _ in texts {
                            self.s.handle_synthesized(
                                *job,
                                Synthesis::Clause(vec![0; 8000]),
                                self.now,
                            );
                        }
                        self.s.handle_synthesized(*job, Synthesis::Done, self.now);
                    }
                    _ => {}
                }
                self.log.push(match out {
                    Output::Play { pcm, mark } => Output::Play {
                        pcm: vec![0; pcm.len().min(1)],
                        mark,
                    },
                    other => other,
                });
            }
        }

        /// `ms` of the caller's audio (loud voice or silence), 20 ms a frame, with time
        /// passing for playback and timers.
        fn talk(&mut self, ms: u64, loud: bool) {
            let frame = vec![if loud { 9000i16 } else { 0 }; 160];
            for _ in 0..ms / 20 {
                self.now += Duration::from_millis(20);
                while let Some(&(mark, at)) = self.playing.front() {
                    if at > self.now || self.paused_at.is_some() {
                        break;
                    }
                    self.playing.pop_front();
                    self.s.handle_played_out(mark, at);
                    self.pump();
                }
                if self.s.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.s.handle_timeout(self.now);
                    self.pump();
                }
                self.s.handle_audio(&frame, self.now);
                self.pump();
            }
        }

        fn wait(&mut self, ms: u64) {
            self.talk(ms, false);
        }

        fn take(&mut self) -> Vec<Output> {
            std::mem::take(&mut self.log)
        }

        /// The end-of-turn model's consultation in `log`, if any.
        fn consultation(log: &[Output]) -> Option<u64> {
            log.iter().find_map(|o| match o {
                Output::JudgeTurn { job, .. } => Some(*job),
                _ => None,
            })
        }

        /// Transferred to `queue:general`, whose agent answers at once.
        fn agent_answers(&mut self) {
            self.s.handle_agent(
                AgentEvent::Dialling {
                    uri: "queue:general".into(),
                },
                self.now,
            );
            self.s.handle_agent(AgentEvent::Answered, self.now);
            self.pump();
            self.take();
        }

        fn recognitions(log: &[Output]) -> Vec<(u64, usize, bool)> {
            log.iter()
                .filter_map(|o| match o {
                    Output::Recognize {
                        job,
                        audio,
                        speculative,
                    } => Some((*job, audio.len(), *speculative)),
                    _ => None,
                })
                .collect()
        }

        fn decisions(log: &[Output]) -> Vec<serde_json::Value> {
            log.iter()
                .filter_map(|o| match o {
                    Output::Report(Report::Turn { record, .. }) => Some(record.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    fn says(log: &[Output], text: &str) -> bool {
        log.iter().any(|o| {
            matches!(o, Output::Synthesize { texts, .. } if texts.iter().any(|t| t.contains(text)))
        })
    }

    #[test]
    fn no_input_counts_from_the_end_of_the_prompt_not_from_the_listen() {
        let mut h = harness(false);
        assert!(says(&h.log, "Say something."));
        // The prompt plays 1 s (+ the timer of the ask's 8 s default no-input wait).
        let listen_ms = h.s.last_listen.0;
        h.take();
        h.wait(1000 + listen_ms - 100);
        assert!(
            !says(&h.log, "Bye."),
            "not yet: the timer started when the prompt ended"
        );
        h.wait(200);
        assert!(says(&h.log, "Bye."), "no input -> the handler");
        let d = Harness::decisions(&h.log);
        assert_eq!(d.last().unwrap()["input"], "(silence)");
    }

    #[test]
    fn barge_in_stops_the_prompt_and_a_backchannel_does_not() {
        let mut h = harness(false);
        h.take();
        // "uh-huh" 160 ms, 200 ms into the prompt: nothing stops, nothing is recognised.
        h.wait(200);
        h.talk(160, true);
        h.wait(1200);
        let log = h.take();
        assert!(
            !log.contains(&Output::StopPlayback),
            "a backchannel does not interrupt"
        );
        assert!(Harness::recognitions(&log).is_empty(), "nor is it a turn");
        // A real interruption: held at once, committed when the speech goes on.
        let mut h = harness(false);
        h.take();
        h.wait(200);
        h.talk(300, true);
        let log = h.take();
        assert!(
            log.contains(&Output::PausePlayback),
            "held after 240 ms of voice"
        );
        assert!(!log.contains(&Output::StopPlayback), "not dropped yet");
        h.talk(700, true);
        assert!(
            h.take().contains(&Output::StopPlayback),
            "still talking: committed"
        );
        h.wait(800);
        assert!(
            !Harness::recognitions(&h.log).is_empty(),
            "the interrupting turn is recognised"
        );

        // "Okay" over the prompt: held, recognised as a backchannel, resumed; no turn.
        let mut h = harness(false);
        h.take();
        h.wait(200);
        h.talk(400, true);
        h.wait(800);
        let log = h.take();
        assert!(log.contains(&Output::PausePlayback));
        let job = Harness::recognitions(&log).last().expect("recognised").0;
        h.s.handle_recognized(job, Ok(("Okay.".into(), 0.9)), h.now);
        h.pump();
        let log = h.take();
        assert!(log.contains(&Output::ResumePlayback), "{log:?}");
        assert!(!log.contains(&Output::StopPlayback));
        assert!(
            Harness::decisions(&log).is_empty(),
            "a backchannel is not a turn"
        );
        assert!(is_backchannel("Uh-huh.") && is_backchannel("mm hmm") && !is_backchannel("yes"));
    }

    #[test]
    fn keys_stop_the_prompt_and_an_entry_completes_after_the_inter_digit_pause() {
        let mut h = harness(false);
        h.take();
        h.wait(100);
        h.s.handle_digit('1', h.now);
        h.pump();
        assert!(
            h.take().contains(&Output::StopPlayback),
            "a key stops the prompt"
        );
        h.s.handle_digit('2', h.now);
        h.pump();
        h.wait(2900);
        assert!(Harness::decisions(&h.log).is_empty(), "still typing");
        h.wait(200);
        let d = Harness::decisions(&h.log);
        assert_eq!(d[0]["input"], "#dtmf 12", "{d:?}");
    }

    #[test]
    fn a_speculation_is_used_when_the_turn_is_the_same_audio_and_dropped_when_not() {
        let mut h = harness(false);
        h.wait(1500); // the prompt has played
        h.take();
        h.talk(800, true);
        h.wait(240); // the energy endpointer's pause: speculation starts
        let log = h.take();
        let spec = Harness::recognitions(&log);
        assert_eq!(spec.len(), 1);
        assert!(spec[0].2, "speculative");
        h.s.handle_recognized(spec[0].0, Ok(("hello there".into(), 0.9)), h.now);
        h.pump();
        h.wait(500); // the endpoint (700 ms): the same audio
        let log = h.take();
        assert!(
            Harness::recognitions(&log).is_empty(),
            "no second recognition"
        );
        let d = Harness::decisions(&log);
        assert_eq!(d[0]["input"], "hello there");
        assert_eq!(d[0]["latency"]["speculative"], true, "{}", d[0]);

        // The caller goes on after the pause: that speculation is dropped; the one at the
        // next pause covers the whole turn and is the one used.
        h.wait(1500);
        h.take();
        h.talk(800, true);
        h.wait(240);
        let first = Harness::recognitions(&h.take())[0];
        h.talk(600, true);
        h.wait(800);
        let log = h.take();
        let again = Harness::recognitions(&log);
        assert_eq!(again.len(), 1, "{again:?}");
        assert!(
            again[0].1 > first.1,
            "the second speculation has the whole turn"
        );
        assert!(
            log.iter()
                .any(|o| matches!(o, Output::CancelRecognition { job } if *job == first.0)),
            "the stale speculation is cancelled, not left to hold a core"
        );
        h.s.handle_recognized(first.0, Ok(("four seven".into(), 0.9)), h.now);
        h.pump();
        assert!(
            Harness::decisions(&h.log).is_empty(),
            "the first pause's text is not the turn"
        );
        h.s.handle_recognized(
            again[0].0,
            Ok(("four seven two one nine eight".into(), 0.9)),
            h.now,
        );
        h.pump();
        let d = Harness::decisions(&h.take());
        assert_eq!(d[0]["slots"]["order_number"], "472198", "{d:?}");
    }

    #[test]
    fn recognition_past_its_deadline_offers_the_keypad_and_late_results_are_ignored() {
        let mut h = harness(false);
        h.wait(1500);
        h.talk(800, true);
        h.wait(1000);
        let job = Harness::recognitions(&h.log)
            .into_iter()
            .find(|r| !r.2)
            .or_else(|| Harness::recognitions(&h.log).into_iter().next())
            .unwrap()
            .0;
        h.take();
        h.wait(RECOGNITION_DEADLINE.as_millis() as u64);
        let log = h.take();
        assert!(says(&log, "keypad"), "the keypad offer");
        assert!(
            log.iter()
                .any(|o| matches!(o, Output::Report(Report::AsrUnavailable { .. })))
        );
        h.s.handle_recognized(job, Ok(("hello there".into(), 0.9)), h.now);
        h.pump();
        assert!(
            Harness::decisions(&h.log).is_empty(),
            "a late result changes nothing"
        );
    }

    #[test]
    fn an_utterance_while_the_bot_is_busy_waits_for_the_next_listen() {
        let mut h = harness(false);
        h.auto_synthesis = false;
        h.wait(1500);
        h.take();
        // The bot answers "hi" with a reply that takes a while to synthesise...
        h.talk(800, true);
        h.wait(300);
        let spec = Harness::recognitions(&h.log)[0].0;
        h.s.handle_recognized(spec, Ok(("hi".into(), 0.9)), h.now);
        h.pump();
        h.wait(500);
        let job = h
            .take()
            .iter()
            .find_map(|o| match o {
                Output::Synthesize { job, .. } => Some(*job),
                _ => None,
            })
            .expect("the reply is being synthesised");
        // ...meanwhile the caller says something more.
        h.talk(700, true);
        h.wait(800);
        assert!(
            Harness::recognitions(&h.log).iter().all(|r| r.2),
            "kept, not recognised while busy"
        );
        h.s.handle_synthesized(job, Synthesis::Clause(vec![0; 800]), h.now);
        h.s.handle_synthesized(job, Synthesis::Done, h.now);
        h.pump();
        // The number ask listens: the kept utterance is recognised now (or its speculation).
        let recognitions = Harness::recognitions(&h.log);
        assert!(!recognitions.is_empty(), "{recognitions:?}");
    }

    #[test]
    fn the_model_ends_a_complete_turn_early_and_waits_on_an_incomplete_one() {
        let mut h = harness(true);
        h.wait(1500);
        h.take();
        h.talk(800, true);
        h.wait(200);
        let log = h.take();
        let consult = Harness::consultation(&log).expect("the model is consulted at the pause");
        let spec = Harness::recognitions(&log)[0].0;
        h.s.handle_recognized(spec, Ok(("hello there".into(), 0.9)), h.now);
        h.s.handle_verdict(consult, 0.9, h.now);
        h.pump();
        let d = Harness::decisions(&h.log);
        assert_eq!(d[0]["input"], "hello there", "ended 200 ms after the voice");
        assert_eq!(d[0]["latency"]["ended_by"], "model");
        assert_eq!(d[0]["latency"]["end_of_turn_ms"], 200);

        // At the number ask: "four seven two" then a pause; the model says complete, but
        // three digits are not a number: the turn goes on.
        h.wait(1500);
        h.take();
        h.talk(900, true);
        h.wait(200);
        let log = h.take();
        let consult = Harness::consultation(&log).unwrap();
        let spec = Harness::recognitions(&log)[0].0;
        h.s.handle_verdict(consult, 0.95, h.now);
        h.s.handle_recognized(spec, Ok(("four seven two".into(), 0.9)), h.now);
        h.pump();
        h.wait(800); // a one second pause between the groups
        assert!(
            Harness::decisions(&h.log).is_empty(),
            "not cut between the groups"
        );
        h.talk(900, true);
        h.wait(200);
        let log = h.take();
        let consult = Harness::consultation(&log).unwrap();
        let spec = Harness::recognitions(&log)
            .into_iter()
            .rfind(|r| r.2)
            .unwrap()
            .0;
        h.s.handle_recognized(
            spec,
            Ok(("four seven two one nine eight".into(), 0.9)),
            h.now,
        );
        h.s.handle_verdict(consult, 0.9, h.now);
        h.pump();
        let d = Harness::decisions(&h.log);
        assert_eq!(d[0]["slots"]["order_number"], "472198", "{d:?}");
        assert_eq!(d[0]["latency"]["ended_by"], "digits");
    }

    #[test]
    fn recognition_time_grows_with_the_turn() {
        assert_eq!(recognition_deadline(8000 * 2), RECOGNITION_DEADLINE);
        assert_eq!(recognition_deadline(8000 * 5), RECOGNITION_DEADLINE);
        assert_eq!(recognition_deadline(8000 * 15), Duration::from_secs(15));
    }

    #[test]
    fn a_turn_that_never_pauses_is_capped_and_answered() {
        let mut h = harness(true);
        h.wait(1500);
        h.take();
        h.talk(15_000, true);
        let r = Harness::recognitions(&h.log);
        let fin = r.iter().find(|r| !r.2).expect("recognised at the cap");
        assert!(fin.1 >= 8 * 15_000);
        // Fifteen seconds of speech take a busy one-thread Whisper longer than a short
        // turn's deadline: the session waits for it rather than offer the keypad.
        h.wait(RECOGNITION_DEADLINE.as_millis() as u64 + 3000);
        assert!(!says(&h.log, "keypad"), "a long turn is given time");
        h.s.handle_recognized(fin.0, Ok(("blah blah".into(), 0.3)), h.now);
        h.pump();
        let d = Harness::decisions(&h.log);
        assert_eq!(d[0]["latency"]["ended_by"], "cap", "{d:?}");
    }

    #[test]
    fn a_transfer_plays_hold_audio_relays_both_ways_and_a_failure_returns_to_the_plan() {
        let mut h = harness(false);
        h.wait(1500);
        h.s.handle_digit('1', h.now); // not what the ask wants: the agent handler by text
        h.take();
        h.talk(800, true);
        h.wait(300);
        let spec = Harness::recognitions(&h.log)[0].0;
        h.s.handle_recognized(spec, Ok(("an agent please".into(), 0.9)), h.now);
        h.pump();
        h.wait(500);
        let log = h.take();
        assert!(
            log.iter()
                .any(|o| matches!(o, Output::Transfer { reason, .. } if reason == "caller asked")),
            "{log:?}"
        );
        h.s.handle_agent(
            AgentEvent::Dialling {
                uri: "sip:desk@192.0.2.9".into(),
            },
            h.now,
        );
        h.wait(1500); // the notice, then hold audio
        let plays = h
            .take()
            .iter()
            .filter(|o| matches!(o, Output::Play { .. }))
            .count();
        assert!(plays >= 3, "hold audio keeps coming: {plays}");
        h.s.handle_agent(AgentEvent::Failed("486 Busy Here".into()), h.now);
        h.pump();
        let log = h.take();
        assert!(says(&log, "Nobody is free."), "the fallback");
        assert!(log.iter().any(|o| matches!(
            o,
            Output::Report(Report::Transfer {
                status: TransferStatus::Failed,
                ..
            })
        )));

        // Connected: the caller's audio goes to the agent and the agent's to the caller.
        let mut h = harness(false);
        h.first_words("an agent please");
        h.wait(500);
        h.s.handle_agent(
            AgentEvent::Dialling {
                uri: "sip:desk@192.0.2.9".into(),
            },
            h.now,
        );
        h.s.handle_agent(AgentEvent::Answered, h.now);
        h.pump();
        h.take();
        h.talk(100, true);
        h.s.handle_agent(AgentEvent::Audio(vec![5; 160]), h.now);
        h.pump();
        let log = h.take();
        assert_eq!(
            log.iter()
                .filter(|o| matches!(o, Output::ToAgent(_)))
                .count(),
            5
        );
        assert!(log.iter().any(|o| matches!(o, Output::Play { .. })));
        h.s.handle_agent(AgentEvent::Ended("the far end hung up".into()), h.now);
        h.pump();
        let log = h.take();
        assert!(log.iter().any(|o| matches!(o, Output::Hangup { .. })));
        assert!(log.iter().any(|o| matches!(
            o,
            Output::Report(Report::CallEnded {
                outcome: Outcome::Transferred,
                ..
            })
        )));
    }

    #[test]
    fn a_waiting_caller_hears_their_place_between_chimes() {
        let mut h = harness(false);
        h.first_words("an agent please");
        h.wait(500);
        h.s.handle_agent(
            AgentEvent::Dialling {
                uri: "queue:general".into(),
            },
            h.now,
        );
        h.wait(1500);
        h.take();
        h.s.handle_agent(
            AgentEvent::Queued {
                position: 2,
                estimated_wait: Some(Duration::from_secs(150)),
            },
            h.now,
        );
        h.pump();
        h.wait(1000);
        let log = h.take();
        assert!(
            says(
                &log,
                "You are number 2 in the queue. The expected wait is about 3 minutes."
            ),
            "{log:?}"
        );
        assert!(log.iter().any(|o| matches!(o, Output::StopPlayback)));
        // Then the chime again, until an agent answers.
        h.wait(1000);
        let plays = (h.take().iter())
            .filter(|o| matches!(o, Output::Play { .. }))
            .count();
        assert!(plays >= 3, "hold audio again: {plays}");
        // Without an estimate, the place alone.
        h.s.handle_agent(
            AgentEvent::Queued {
                position: 1,
                estimated_wait: None,
            },
            h.now,
        );
        h.pump();
        let log = h.take();
        assert!(says(&log, "You are number 1 in the queue."), "{log:?}");
        assert!(!says(&log, "expected wait"));
    }

    #[test]
    fn a_caller_whose_agent_vanishes_hears_an_apology_then_waits_or_the_fallback() {
        let connected = || {
            let mut h = harness(false);
            h.first_words("an agent please");
            h.wait(500);
            h.s.handle_agent(
                AgentEvent::Dialling {
                    uri: "queue:general".into(),
                },
                h.now,
            );
            h.s.handle_agent(AgentEvent::Answered, h.now);
            h.s.handle_agent(AgentEvent::Audio(vec![5; 160]), h.now);
            h.pump();
            h.take();
            h
        };
        // Back in the queue: the apology, then the hold audio; the caller's audio no longer
        // goes to the gone agent, and the next agent connects as usual.
        let mut h = connected();
        let lost = |requeued| AgentEvent::Lost {
            requeued,
            why: "agent alice's phone went silent".into(),
        };
        h.s.handle_agent(lost(true), h.now);
        h.pump();
        h.wait(1500);
        let log = h.take();
        assert!(says(&log, "lost the line to our colleague"), "{log:?}");
        assert!(says(&log, "you are next in line"), "{log:?}");
        // Nobody is rung before the apology has played (an answer would cut it short).
        let at = |f: &dyn Fn(&Output) -> bool| log.iter().position(f);
        let apology = at(&|o| matches!(o, Output::Synthesize { .. })).unwrap();
        let rejoin = at(&|o| matches!(o, Output::RejoinQueue)).expect("rejoins the queue");
        let played = at(&|o| matches!(o, Output::Play { .. })).unwrap();
        assert!(apology < played && played < rejoin, "{log:?}");
        assert!(log.iter().any(|o| matches!(
            o,
            Output::Report(Report::Transfer {
                status: TransferStatus::Failed,
                ..
            })
        )));
        assert!(!log.iter().any(|o| matches!(o, Output::Hangup { .. })));
        h.wait(1000);
        let log = h.take();
        let plays = log
            .iter()
            .filter(|o| matches!(o, Output::Play { .. }))
            .count();
        assert!(plays >= 3, "the hold audio after the apology: {log:?}");
        assert!(
            !log.iter().any(|o| matches!(o, Output::RejoinQueue)),
            "once: {log:?}"
        );
        h.talk(100, true);
        assert!(!h.take().iter().any(|o| matches!(o, Output::ToAgent(_))));
        h.s.handle_agent(AgentEvent::Answered, h.now);
        h.talk(100, true);
        assert!(h.take().iter().any(|o| matches!(o, Output::ToAgent(_))));

        // No queue to go back to: the apology and the transfer's fallback, as one reply.
        let mut h = connected();
        h.s.handle_agent(lost(false), h.now);
        h.pump();
        let log = h.take();
        let texts: Vec<&Vec<String>> = (log.iter())
            .filter_map(|o| match o {
                Output::Synthesize { texts, .. } => Some(texts),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 1, "{log:?}");
        assert!(texts[0][0].contains("lost the line"), "{texts:?}");
        assert!(says(&log, "Nobody is free."), "the fallback: {log:?}");
        // Before the call: nothing happens.
        let mut h = harness(false);
        h.wait(500);
        h.s.handle_agent(lost(true), h.now);
        h.pump();
        assert!(!says(&h.take(), "lost the line"));
    }

    #[test]
    fn on_a_warm_transfer_the_agent_hears_who_calls_and_why_before_the_caller_is_put_through() {
        // A warm transfer's caller waiting for the agent (`synthesis`: the fake voice answers).
        let waiting = |synthesis: bool| {
            let mut h = harness_on(PLAN, false);
            h.s.warm = true;
            h.first_words("an agent please");
            h.wait(500);
            let uri = "queue:general".to_string();
            h.s.handle_agent(AgentEvent::Dialling { uri }, h.now);
            h.pump();
            h.wait(500);
            h.take();
            h.auto_synthesis = synthesis;
            h
        };
        let mut h = waiting(true);
        h.s.handle_agent(AgentEvent::Answered, h.now);
        h.pump();
        let log = h.take();
        // The announcement, with the transfer's reason (1 s of audio from the fake voice).
        let reason = h.s.bridge.as_ref().unwrap().reason.clone();
        assert!(!reason.is_empty());
        assert!(says(&log, &format!("The reason: {reason}.")), "{log:?}");
        let connected = |log: &[Output]| {
            log.iter().any(|o| {
                matches!(
                    o,
                    Output::Report(Report::Transfer {
                        status: TransferStatus::Connected,
                        ..
                    })
                )
            })
        };
        assert!(!connected(&log), "not yet: {log:?}");
        // While it plays to the agent (paced by the caller's frames) the caller is not heard
        // and still hears the hold audio.
        h.talk(900, true);
        let log = h.take();
        let to_agent: Vec<&Vec<i16>> = (log.iter())
            .filter_map(|o| match o {
                Output::ToAgent(pcm) => Some(pcm),
                _ => None,
            })
            .collect();
        assert_eq!(to_agent.len(), 45, "{log:?}");
        assert!(
            to_agent.iter().all(|f| f.iter().all(|&s| s == 0)),
            "the announcement"
        );
        assert!(!connected(&log));
        assert!(
            !log.iter().any(|o| matches!(o, Output::StopPlayback)),
            "hold goes on"
        );
        // Once it has played: put through; the caller's own words reach the agent.
        h.talk(300, true);
        let log = h.take();
        assert!(connected(&log), "{log:?}");
        assert!(
            log.iter().any(|o| matches!(o, Output::StopPlayback)),
            "hold stops"
        );
        assert!(
            log.iter()
                .any(|o| matches!(o, Output::ToAgent(f) if f[0] == 9000))
        );

        // Synthesis that never finishes does not keep the caller on hold for ever.
        let mut h = waiting(false);
        h.s.handle_agent(AgentEvent::Answered, h.now);
        h.pump();
        h.take();
        h.wait(11_000);
        assert!(!connected(&h.take()));
        h.wait(2_000);
        assert!(connected(&h.take()), "put through after WHISPER_LIMIT");

        // The agent's phone goes silent during the announcement: the apology, not dead air.
        let mut h = waiting(false);
        h.s.handle_agent(AgentEvent::Answered, h.now);
        h.pump();
        h.auto_synthesis = true;
        let why = "agent alice's phone went silent".to_string();
        h.s.handle_agent(
            AgentEvent::Lost {
                requeued: true,
                why,
            },
            h.now,
        );
        h.pump();
        h.wait(1500);
        let log = h.take();
        assert!(says(&log, "lost the line to our colleague"), "{log:?}");
        assert!(h.s.whisper.is_none());
    }

    #[test]
    fn agent_assist_recognises_what_the_caller_says_to_the_agent_and_suggests_an_entry() {
        let plan = PLAN.replace(
            "start: ask",
            "knowledge:\n  - id: warranty\n    topic: the warranty\n    questions: [how long is \
             the warranty, is my laptop under guarantee]\n    answer: \"One year.\"\nstart: ask",
        );
        let connected = |assist: bool| {
            let mut h = harness_on(&plan, false);
            h.s.assist = assist;
            h.first_words("an agent please");
            h.wait(500);
            h.agent_answers();
            h
        };
        let mut h = connected(true);
        h.talk(1000, true);
        h.talk(1000, false);
        h.pump();
        let log = h.take();
        assert!(
            log.iter().any(|o| matches!(o, Output::ToAgent(_))),
            "still relayed"
        );
        let asked = Harness::recognitions(&log);
        // The recognition started at the pause: nothing more was said, so it is the
        // utterance's (a speculative job: never refused for a long queue).
        assert_eq!(asked.len(), 1, "one utterance, one recognition: {asked:?}");
        h.wait(400);
        h.s.handle_recognized(
            asked[0].0,
            Ok(("how long is the warranty on it".into(), 0.9)),
            h.now,
        );
        h.pump();
        let log = h.take();
        let assist = log.iter().find_map(|o| match o {
            Output::Report(Report::Assist {
                text,
                suggestion,
                latency,
                ..
            }) => Some((text.clone(), suggestion.clone(), *latency)),
            _ => None,
        });
        let (text, suggestion, latency) = assist.expect("an assist report");
        assert_eq!(text, "how long is the warranty on it");
        let suggestion = suggestion.expect("the entry that answers it");
        assert_eq!(
            (suggestion.id.as_str(), suggestion.answer.as_str()),
            ("warranty", "One year.")
        );
        // From the end of the voice (the endpointer's silence, then the 400 ms wait).
        assert!(latency >= Duration::from_millis(400), "{latency:?}");
        // The bot does not answer: no synthesis, no decision.
        assert!(!log.iter().any(|o| matches!(o, Output::Synthesize { .. })));
        // The agent's side: their utterance is recognised too, and reported as theirs.
        let agent_talks = |h: &mut Harness| {
            for loud in [true, false] {
                for _ in 0..50 {
                    h.now += Duration::from_millis(20);
                    let frame = vec![if loud { 9000i16 } else { 0 }; 160];
                    h.s.handle_agent(AgentEvent::Audio(frame), h.now);
                    h.pump();
                }
            }
            Harness::recognitions(&h.take())
        };
        let asked = agent_talks(&mut h);
        assert_eq!(asked.len(), 1, "the agent's utterance: {asked:?}");
        h.s.handle_recognized(
            asked[0].0,
            Ok(("one year from purchase".into(), 0.9)),
            h.now,
        );
        h.pump();
        let said = h.take().into_iter().find_map(|o| match o {
            Output::Report(Report::AgentSaid { text, .. }) => Some(text),
            _ => None,
        });
        assert_eq!(said.as_deref(), Some("one year from purchase"));
        // Off: nothing is recognised, on either side.
        let mut h = connected(false);
        h.talk(1000, true);
        h.talk(1000, false);
        h.pump();
        assert!(Harness::recognitions(&h.take()).is_empty());
        assert!(agent_talks(&mut h).is_empty());
    }

    /// With the end-of-turn model, a caller's question to the agent ends when the model
    /// says it is complete (200 ms after the voice), as a turn to the bot would: it is
    /// recognised for assist then, not lost to the bot's turn-taking nor kept for the 1 s
    /// silence rule.
    #[test]
    fn assist_ends_the_callers_utterance_on_the_models_verdict() {
        let mut h = harness_on(PLAN, true);
        h.s.assist = true;
        h.wait(1500);
        h.talk(800, true);
        h.wait(200);
        let log = h.take();
        let consult = Harness::consultation(&log);
        let first = Harness::recognitions(&log)[0].0;
        h.s.handle_recognized(first, Ok(("an agent please".into(), 0.9)), h.now);
        h.s.handle_verdict(consult.expect("consulted"), 0.9, h.now);
        h.pump();
        h.wait(500);
        h.agent_answers();
        h.talk(1000, true);
        h.wait(200);
        let log = h.take();
        let consult = Harness::consultation(&log);
        let asked = Harness::recognitions(&log);
        assert_eq!(asked.len(), 1, "one speculation at the pause: {asked:?}");
        h.s.handle_recognized(
            asked[0].0,
            Ok(("how long is the warranty".into(), 0.9)),
            h.now,
        );
        h.pump();
        assert!(h.take().is_empty(), "not over before the model says so");
        h.s.handle_verdict(
            consult.expect("the model is consulted at the pause"),
            0.9,
            h.now,
        );
        h.pump();
        let log = h.take();
        assert!(
            Harness::recognitions(&log).is_empty(),
            "the speculation was the utterance's"
        );
        let latency = log.into_iter().find_map(|o| match o {
            Output::Report(Report::Assist { latency, .. }) => Some(latency),
            _ => None,
        });
        assert_eq!(latency, Some(Duration::from_millis(200)));

        // The caller goes on after a pause: that speculation is cancelled, and the whole
        // utterance is recognised when the model calls it complete.
        h.talk(600, true);
        h.wait(200);
        let first = Harness::recognitions(&h.take());
        h.talk(600, true);
        h.wait(200);
        let log = h.take();
        assert!(
            log.iter()
                .any(|o| matches!(o, Output::CancelRecognition { job } if *job == first[0].0)),
            "{log:?}"
        );
        let consult = Harness::consultation(&log);
        let second = Harness::recognitions(&log);
        h.s.handle_recognized(second[0].0, Ok(("and the battery".into(), 0.9)), h.now);
        h.s.handle_verdict(consult.unwrap(), 0.9, h.now);
        h.pump();
        let reported = h.take().into_iter().find_map(|o| match o {
            Output::Report(Report::Assist { text, .. }) => Some(text),
            _ => None,
        });
        assert_eq!(reported.as_deref(), Some("and the battery"));
    }

    #[test]
    fn a_message_is_recorded_after_the_tone_until_the_caller_falls_silent() {
        const VOICEMAIL: &str = "name: vm\nstart: message\nnodes:\n  message:\n    \
            voicemail: { queue: sales, say: \"Leave a message.\", max_s: 20 }\n";
        let mut h = harness_on(VOICEMAIL, false);
        h.wait(1500); // the prompt, then the tone
        let log = h.take();
        assert!(says(&log, "Leave a message."), "{log:?}");
        // Before the tone has played, nothing counts; then 2 s of voice and 4 s of silence.
        h.talk(2000, true);
        h.wait(4000);
        h.pump();
        let log = h.take();
        let saved: Vec<usize> = (log.iter())
            .filter_map(|o| match o {
                Output::SaveMessage { queue, pcm } if queue == "sales" => Some(pcm.len()),
                _ => None,
            })
            .collect();
        assert_eq!(saved.len(), 1, "{log:?}");
        // From the tone to half a second after the voice (the wait before it, under 1.5 s,
        // then 2 s of voice), not the 4 s of trailing silence.
        assert!((8 * 2500..=8 * 4000).contains(&saved[0]), "{saved:?}");
        assert!(says(&log, "call you back"), "thanks, then goodbye: {log:?}");

        // `#` ends it at once; a caller who hangs up mid-message keeps what they said.
        let mut h = harness_on(VOICEMAIL, false);
        h.wait(1500);
        h.talk(1000, true);
        h.s.handle_digit('#', h.now);
        h.pump();
        assert!(
            h.take()
                .iter()
                .any(|o| matches!(o, Output::SaveMessage { .. }))
        );
        let mut h = harness_on(VOICEMAIL, false);
        h.wait(1500);
        h.talk(1000, true);
        h.s.handle_hangup(h.now);
        h.pump();
        let log = h.take();
        assert!(log.iter().any(|o| matches!(o, Output::SaveMessage { .. })));
        // Nothing said: nothing saved, and the dialplan goes on after 10 s.
        let mut h = harness_on(VOICEMAIL, false);
        h.wait(1500 + 10_500);
        h.pump();
        let log = h.take();
        assert!(!log.iter().any(|o| matches!(o, Output::SaveMessage { .. })));
        assert!(says(&log, "call you back"), "{log:?}");
    }

    #[test]
    fn a_waiting_caller_may_press_a_key_the_transfer_offers_to_leave_the_queue() {
        const PLAN: &str = "name: keys\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: \
            general, keys: { \"2\": message }, options: \"Press 2 to leave a message.\" }\n  \
            message:\n    voicemail: { queue: general, say: \"Leave a message.\" }\n";
        let mut h = harness_on(PLAN, false);
        h.wait(500);
        h.s.handle_agent(
            AgentEvent::Dialling {
                uri: "queue:general".into(),
            },
            h.now,
        );
        h.s.handle_agent(
            AgentEvent::Queued {
                position: 1,
                estimated_wait: None,
            },
            h.now,
        );
        h.pump();
        h.wait(1000);
        let log = h.take();
        assert!(
            says(
                &log,
                "You are number 1 in the queue. Press 2 to leave a message."
            ),
            "the options follow the place: {log:?}"
        );
        // A key it does not offer does nothing; the one it offers leaves the queue.
        h.s.handle_digit('5', h.now);
        h.pump();
        assert!(!h.take().iter().any(|o| matches!(o, Output::CancelTransfer)));
        h.s.handle_digit('2', h.now);
        h.pump();
        h.wait(1000);
        let log = h.take();
        assert!(
            log.iter().any(|o| matches!(o, Output::CancelTransfer)),
            "{log:?}"
        );
        assert!(says(&log, "Leave a message."), "{log:?}");
    }

    #[test]
    fn a_waiting_caller_may_say_what_a_key_does_instead_of_pressing_it() {
        const PLAN: &str = "name: keys\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: \
            general, keys: { \"1\": back, \"2\": message }, options: \"Press 1 or 2.\" }\n  \
            back:\n    callback: { queue: general }\n  \
            message:\n    voicemail: { queue: general, say: \"Leave a message.\" }\n";
        let waiting = || {
            let mut h = harness_on(PLAN, false);
            h.wait(500);
            let uri = "queue:general".to_string();
            h.s.handle_agent(AgentEvent::Dialling { uri }, h.now);
            h.pump();
            h.wait(500);
            h.take();
            h
        };
        // Each utterance while waiting is recognised; words that ask for nothing keep the
        // caller in the line.
        let mut h = waiting();
        h.talk(800, true);
        h.talk(1000, false);
        let asked = Harness::recognitions(&h.take());
        assert_eq!(asked.len(), 1, "{asked:?}");
        h.s.handle_recognized(
            asked[0].0,
            Ok(("is it going to be long".into(), 0.9)),
            h.now,
        );
        h.pump();
        assert!(!h.take().iter().any(|o| matches!(o, Output::CancelTransfer)));
        // "Leave a message": the voicemail key's node.
        h.talk(800, true);
        h.talk(1000, false);
        let asked = Harness::recognitions(&h.take());
        assert_eq!(asked.len(), 1, "{asked:?}");
        let words = "Can I just leave a message?".to_string();
        h.s.handle_recognized(asked[0].0, Ok((words, 0.9)), h.now);
        h.pump();
        h.wait(1000);
        let log = h.take();
        assert!(
            log.iter().any(|o| matches!(o, Output::CancelTransfer)),
            "{log:?}"
        );
        assert!(says(&log, "Leave a message."), "{log:?}");
        // Other ways to ask, as the engine reads them.
        let h = waiting();
        let key = |text: &str| h.s.engine.key_said_while_waiting(text);
        assert_eq!(key("Please call me back."), Some('1'));
        assert_eq!(key("voicemail"), Some('2'));
        assert_eq!(key("two"), Some('2'));
        assert_eq!(key("press 1"), Some('1'));
        assert_eq!(key("请给我回电"), Some('1'));
        assert_eq!(key("five"), None, "not a key it offers");
        assert_eq!(key("I have 2 questions about order 1"), None);
        assert_eq!(key("what is the weather"), None);
    }

    #[test]
    fn the_outcome_is_decided_when_the_call_ends() {
        // Hung up before anything happened: abandoned.
        let mut h = harness(false);
        h.wait(300);
        h.s.handle_hangup(h.now);
        h.pump();
        assert!(h.log.iter().any(|o| matches!(
            o,
            Output::Report(Report::CallEnded {
                outcome: Outcome::Abandoned,
                ..
            })
        )));
        assert!(h.s.is_over());
        // The dialplan said goodbye: self-served, the hang-up after the goodbye played.
        let mut h = harness(false);
        h.first_words("hello there");
        h.wait(1500);
        h.take();
        h.s.handle_digit('4', h.now);
        for d in "72198#".chars() {
            h.s.handle_digit(d, h.now);
        }
        h.pump();
        assert!(
            !h.take().iter().any(|o| matches!(o, Output::Hangup { .. })),
            "not before the goodbye played"
        );
        h.wait(1500);
        let log = h.take();
        assert!(log.iter().any(|o| matches!(o, Output::Hangup { .. })));
        assert!(log.iter().any(|o| matches!(
            o,
            Output::Report(Report::CallEnded {
                outcome: Outcome::SelfServed,
                ..
            })
        )));
    }

    #[test]
    fn a_caller_who_said_goodbye_and_hangs_up_on_the_survey_was_served() {
        // The goodbye handler asks for a score; the caller hangs up over the question. The
        // bot had brought the call to its end: self-served, not abandoned.
        let plan = PLAN
            .replace(
                "intents:\n",
                "intents:\n  goodbye: { examples: [goodbye, bye bye, that is all goodbye] }\n",
            )
            .replace("slots:\n", "slots:\n  score: { type: rating }\n")
            .replace("agent: to_agent }", "agent: to_agent, goodbye: survey }")
            .replace(
                "nodes:\n",
                "nodes:\n  survey:\n    ask: { prompt: \"Rate us from one to five.\", slot: score, dtmf: 1, fail: bye }\n    next: bye\n",
            );
        let mut h = harness_on(&plan, false);
        h.first_words("goodbye");
        h.wait(400);
        h.s.handle_hangup(h.now);
        h.pump();
        assert!(
            h.log.iter().any(|o| matches!(
                o,
                Output::Report(Report::CallEnded {
                    outcome: Outcome::SelfServed,
                    ..
                })
            )),
            "{:?}",
            h.log
        );
    }
}
