//! The reporting seam: what happens on calls, as typed events. The call session, the SIP and
//! media driver and the dialplan registry *emit* `Report`s through a `Reporter`; the
//! operations side (`ops/`: Prometheus metrics, the live view, call records, the stdout
//! lines tests read) *observes* them. Nothing below `ops/` imports it, there is no global
//! registry, and two servers can run in one process, each with its own observers.
//!
//! Reports carry no wall-clock time: the cores that emit them are sans-IO; an observer that
//! needs the time of day reads it when the report arrives (within microseconds).

use std::sync::Arc;
use std::time::Duration;

use crate::media::session::MediaCounters;

/// How a finished call went (the basis of containment and transfer rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bot answered something, or the dialplan finished the call, without a human.
    SelfServed,
    /// The caller reached an agent.
    Transferred,
    /// A transfer was needed and no agent answered.
    Failed,
    /// Hung up before being helped.
    Abandoned,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::SelfServed => "self_served",
            Outcome::Transferred => "transferred",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// Where a transfer's agent leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    Dialling,
    Connected,
    /// Never connected: busy, no answer, unreachable.
    Failed,
    /// Connected, and now over.
    Ended,
}

impl TransferStatus {
    pub fn name(self) -> &'static str {
        match self {
            TransferStatus::Dialling => "dialling",
            TransferStatus::Connected => "connected",
            TransferStatus::Failed => "failed",
            TransferStatus::Ended => "ended",
        }
    }
}

/// Why a caller's turn was judged over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    /// The end-of-turn model judged the turn complete at a short pause.
    Model,
    /// At a digits ask: the number heard so far is long enough and the model agreed.
    Digits,
    /// The silence rule (no early verdict, or an incomplete one).
    Silence,
    /// The hard cap on a turn that never pauses (hold music, a television).
    Cap,
}

impl TurnEnd {
    pub fn name(self) -> &'static str {
        match self {
            TurnEnd::Model => "model",
            TurnEnd::Digits => "digits",
            TurnEnd::Silence => "silence",
            TurnEnd::Cap => "cap",
        }
    }
}

/// One timed turn, from the end of the caller's voice to the first reply audio queued.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnLatency {
    /// Last voiced frame -> the turn judged over.
    pub end_of_turn: Duration,
    /// Turn over -> text (zero-ish when the speculative recognition already had it).
    pub asr: Duration,
    /// Text -> the engine's decision.
    pub decide: Duration,
    /// Decision -> first reply audio queued for sending.
    pub reply_audio: Duration,
    /// The text came from recognition started at a pause, before the turn was over.
    pub speculative: bool,
    pub ended_by: TurnEnd,
}

impl TurnLatency {
    /// Turn over -> first reply packet (the next 20 ms tick sends what was queued).
    pub fn detected_to_audio(&self) -> Duration {
        self.asr + self.decide + self.reply_audio + Duration::from_millis(20)
    }

    /// Last voiced frame -> first reply packet, as the server sees it (the caller also
    /// hears the network and the jitter buffer).
    pub fn voice_to_voice(&self) -> Duration {
        self.end_of_turn + self.detected_to_audio()
    }

    /// The JSON of `voxnav: latency` lines and of the decision record's `latency`.
    pub fn to_json(&self, call_id: &str) -> serde_json::Value {
        let ms = |d: Duration| d.as_millis() as u64;
        serde_json::json!({
            "call": call_id,
            "ended_by": self.ended_by.name(),
            "end_of_turn_ms": ms(self.end_of_turn),
            "speculative": self.speculative,
            "asr_ms": ms(self.asr),
            "decide_ms": ms(self.decide),
            "reply_audio_ms": ms(self.reply_audio),
            "detected_to_audio_ms": ms(self.detected_to_audio()),
            "voice_to_voice_ms": ms(self.voice_to_voice()),
        })
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The SIP side answered a call (`transport`: udp or tcp).
    CallAnswered {
        call_id: String,
        transport: &'static str,
    },
    /// A call's media ended: its RTP counters.
    MediaFinished {
        call_id: String,
        counters: MediaCounters,
    },
    /// A SIP response was sent.
    SipResponse { code: u16 },
    /// A dialplan was (re)loaded, or refused (the previous version keeps serving).
    DialplanReload { ok: bool },
    /// The dialplan took over an answered call.
    CallStarted {
        call_id: String,
        caller: String,
        hotline: String,
        dialplan_version: u64,
    },
    /// A turn's decision record (the `voxnav: decision` JSON, with its latency when timed),
    /// and the call's transcript so far.
    Turn {
        call_id: String,
        record: serde_json::Value,
        transcript: Vec<String>,
    },
    /// The caller's speech held a prompt: a real interruption (the prompt and its synthesis
    /// dropped), or a backchannel, cough or noise (`resumed`: the prompt went on).
    BargeIn { call_id: String, resumed: bool },
    /// A timed turn's latency.
    Latency {
        call_id: String,
        latency: TurnLatency,
    },
    /// The dialplan handed the call to a human (`reason`: the dialplan's reason).
    TransferRequested { call_id: String, reason: String },
    /// The agent leg changed.
    Transfer {
        call_id: String,
        status: TransferStatus,
        agent: String,
        why: String,
        after: Duration,
        frames_to_agent: u64,
        frames_to_caller: u64,
    },
    /// Recognition was unavailable (failed, too slow, queue too long): the keypad was offered.
    AsrUnavailable { call_id: String, why: String },
    /// How long a recognition or synthesis waited for its engine and cores.
    EngineWait {
        engine: &'static str,
        waited: Duration,
    },
    /// A recognition finished, by the engine that heard it.
    Recognized { engine: &'static str },
    /// The recognition queue as a call saw it.
    AsrQueue { running: usize, waiting: usize },
    /// voxnav's registration to its registrar changed: `state` is registered, registering or
    /// failed (with the registrar's `status`, 408 when it did not answer).
    Registration {
        registrar: String,
        state: &'static str,
        status: Option<u16>,
        detail: String,
    },
    /// An agent's registered phones changed: `contacts` is what is left (empty: none).
    AgentContacts {
        agent: String,
        contacts: Vec<String>,
    },
    /// A REGISTER came with wrong credentials.
    AgentRefused,
    /// An agent's state changed (`routing::Acd`).
    AgentState { agent: String, state: &'static str },
    /// A caller's transfer to a queue was answered by `agent` after waiting `waited`.
    QueueAnswered {
        call_id: String,
        queue: String,
        agent: String,
        waited: std::time::Duration,
    },
    /// A callback's step: requested, ringing_agent, agent_missed, calling_back, connected,
    /// ended, failed (`call::callback`).
    Callback {
        id: String,
        queue: String,
        number: String,
        status: &'static str,
        agent: String,
        why: String,
    },
    /// The agent wrapped the call up on the desktop: a code and notes (`ops::desk`).
    WrapUp {
        call_id: String,
        agent: String,
        code: String,
        notes: String,
    },
    /// What the caller said while talking to an agent, and what the knowledge base and the
    /// router make of it: shown on the agent's desktop (agent assist).
    Assist {
        call_id: String,
        text: String,
        /// The intent the router picks (None: out of scope).
        intent: Option<String>,
        /// The knowledge entry that answers it best, if it scores over the hotline's
        /// threshold.
        suggestion: Option<Suggestion>,
        /// From the end of the caller's voice to this report (end of turn, recognition in
        /// the queue, routing): the assist latency before the desk's next look.
        latency: std::time::Duration,
    },
    /// What the agent said to the caller (their side of the desk's live transcript; with
    /// agent assist on).
    AgentSaid {
        call_id: String,
        text: String,
        /// From the end of the agent's voice to this report.
        latency: std::time::Duration,
    },
    /// A caller's message was saved for a queue (a `voicemail` node).
    MessageSaved {
        call_id: String,
        queue: String,
        path: String,
        seconds: f64,
    },
    /// A call is over, with the outcome the session decided.
    CallEnded {
        call_id: String,
        /// The hotline's name (per-hotline outcome counts).
        hotline: String,
        outcome: Outcome,
        transfer_reason: Option<String>,
    },
}

/// Receives reports. Called on the emitter's thread: quick, never blocking (a channel send,
/// an atomic, a short mutex).
pub trait Observer: Send + Sync {
    fn observe(&self, report: &Report);
}

/// Hands each report to every observer. Cheap to clone; the default has no observers.
#[derive(Clone, Default)]
pub struct Reporter {
    observers: Arc<Vec<Arc<dyn Observer>>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reporter({} observers)", self.observers.len())
    }
}

impl Reporter {
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Self {
        Self {
            observers: Arc::new(observers),
        }
    }

    pub fn report(&self, report: Report) {
        for o in self.observers.iter() {
            o.observe(&report);
        }
    }
}

/// An observer that keeps every report (for tests).
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<Report>>);

impl Observer for Collect {
    fn observe(&self, report: &Report) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(report.clone());
    }
}

impl Collect {
    pub fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A knowledge entry suggested to an agent (`Report::Assist`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suggestion {
    pub id: String,
    pub topic: String,
    pub answer: String,
    pub score: f32,
}
