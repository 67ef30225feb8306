//! The thin driver of one call: a tokio task that feeds the sans-IO `CallSession` its inputs
//! (the caller's audio and keys from the media driver, finished engine jobs, the agent leg,
//! its timers) and carries out its outputs on the shared engines:
//!
//! - recognition, the end-of-turn model, synthesis and backend requests run on tokio's
//!   blocking pool; the engines' own gates keep the threads they run within the core budget,
//!   so load shows up as measured queue wait (reported), not oversubscribed cores;
//! - a speculative recognition queues like any other (if nothing more is said, it is the
//!   turn's recognition) and is cancelled when the caller goes on, so stale work leaves the
//!   queue; a turn's recognition is answered at once with the keypad offer when too many are
//!   already waiting;
//! - fixed prompts come from the prompt cache; dynamic replies stream clause by clause;
//! - transfers dial the seat through `net::leg` and relay the agent's audio;
//! - reports go to the server's observers.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::session::{AgentEvent, CallSession, Heard, Output, Synthesis};
use super::transfer::{AgentDirectory, NoRoute, Route};
use super::turn::{DetectorFactory, EndOfTurnModel};
use crate::dialplan::engine::CallEngine;
use crate::dialplan::registry::HotlineRegistry;
use crate::media::session::MediaEvent;
use crate::net::AnsweredCall;
use crate::net::leg::{Leg, LegCommand, LegConfig, LegEvent};
use crate::net::media::MediaEngine;
use crate::report::{Report, Reporter};
use crate::routing::Leaving;
use crate::speech::{RecognizeOptions, Recognizer, Synthesizer};

/// Recognitions already waiting beyond which a new turn is offered the keypad rather than
/// left to wait in silence (with two running, four waiting is about two seconds).
pub const KEYPAD_OFFER_QUEUE: usize = 4;
/// How often a caller waiting for an agent asks the ACD again.
const QUEUE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);
/// A waiting caller first hears their place this long into the wait (an agent who frees up
/// at once spares them the announcement), then every `transfer.announce_every_s`.
const FIRST_ANNOUNCEMENT: std::time::Duration = std::time::Duration::from_secs(3);
/// A breath between the texts of one reply.
const BREATH_MS: usize = 250;

/// What calls share: the hotline, the engines, the seats, the observers.
pub struct Services {
    pub registry: Arc<HotlineRegistry>,
    pub asr: Arc<dyn Recognizer>,
    pub tts: Arc<dyn Synthesizer>,
    /// Each call's turn detector.
    pub detector: DetectorFactory,
    /// The end-of-turn model the detectors consult (None: they never do).
    pub turn_model: Option<Arc<dyn EndOfTurnModel>>,
    /// Initial dialplan variables.
    pub vars: BTreeMap<String, String>,
    /// Synthesised fixed prompts (texts without `{{variables}}`), by text.
    pub prompts: PromptCache,
    /// Where transfers are dialled.
    pub agents: AgentDirectory,
    /// The client `http` nodes reach backends with (trust and credentials per backend).
    pub backends: Arc<crate::net::backend::Backends>,
    /// The media driver agent legs run on.
    pub media: Arc<MediaEngine>,
    pub reporter: Reporter,
}

/// 8 kHz audio of the dialplan's fixed texts, synthesised once (`warm`) instead of per call.
#[derive(Default)]
pub struct PromptCache {
    audio: std::sync::RwLock<std::collections::HashMap<String, Arc<Vec<i16>>>>,
}

impl PromptCache {
    pub fn get(&self, text: &str) -> Option<Arc<Vec<i16>>> {
        self.audio
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.audio.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Synthesises every fixed text of the current dialplan not cached yet.
    pub fn warm(&self, registry: &HotlineRegistry, tts: &dyn Synthesizer) {
        let hotline = registry.current();
        for text in hotline.plan.static_texts() {
            if self.get(&text).is_some() {
                continue;
            }
            if let Ok((pcm, _)) = tts.speak_with_stats(&text) {
                self.audio
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(text, Arc::new(pcm));
            }
        }
    }
}

/// Work finished off the call's task.
enum Done {
    Recognized(u64, Heard),
    Verdict(u64, f32),
    Synthesized(u64, Synthesis),
    Http(u64, Result<(u16, String), String>),
    Agent(AgentEvent),
}

/// Runs one answered call until it is over.
pub async fn run(services: Arc<Services>, call: AnsweredCall) {
    if let Some(agent) = call.agent.clone() {
        return feature_code(services, call, agent).await;
    }
    let AnsweredCall {
        call_id,
        dialled: _,
        caller,
        agent: _,
        media,
        mut events,
        hangup,
        refer,
        mut signals,
    } = call;
    let span = tracing::Span::current();
    let hotline = services.registry.current();
    let detector = (services.detector)(&hotline.plan.settings.turn);
    // The caller is a variable of the dialplan (`{{caller_number}}`, for a lookup or a
    // greeting), and what records and the dashboard show.
    let mut vars = crate::nlu::dates::with_today(services.vars.clone());
    vars.insert("caller_number".into(), caller.number.clone());
    vars.insert(
        "caller_name".into(),
        caller.name.clone().unwrap_or_default(),
    );
    let engine = CallEngine::new(hotline, vars);
    let mut session = CallSession::new(
        &call_id,
        &caller.number,
        engine,
        services.registry.version(),
        detector,
    )
    .with_assist(services.agents.assist)
    .with_warm_transfer(services.agents.warm);
    let (done_tx, mut done_rx) = unbounded_channel::<Done>();
    let mut driver = Driver {
        call_id: call_id.clone(),
        services: services.clone(),
        done: done_tx,
        span,
        stops: HashMap::new(),
        cancels: HashMap::new(),
        leg: None,
        agent: None,
        queued: None,
        talking_from: None,
        media: media.clone(),
        hangup: Some(hangup),
        refer,
        referred: None,
    };
    session.handle_start(Instant::now());
    loop {
        while let Some(out) = session.poll_output() {
            driver.execute(out);
        }
        if session.is_over() {
            break;
        }
        let deadline = session.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let queue_due = driver.queue_deadline();
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        tokio::select! {
            e = events.recv() => {
                let now = Instant::now();
                match e {
                    Some(MediaEvent::Audio { pcm, .. }) => session.handle_audio(&pcm, now),
                    Some(MediaEvent::Digit(d)) => session.handle_digit(d, now),
                    Some(MediaEvent::PlayedOut { mark, .. }) => session.handle_played_out(mark, now),
                    Some(MediaEvent::Inactive) => driver.hang_up("no RTP for 60 s".into()),
                    // The media ended: the caller hung up (or the server is shutting down).
                    None => session.handle_hangup(now),
                }
            }
            Some(signal) = signals.recv() => {
                if let Some(event) = driver.on_signal(signal) {
                    session.handle_agent(event, Instant::now());
                }
            }
            Some(done) = done_rx.recv() => {
                let now = Instant::now();
                match done {
                    Done::Recognized(job, heard) => {
                        driver.cancels.remove(&job);
                        session.handle_recognized(job, heard, now)
                    }
                    Done::Verdict(job, p) => session.handle_verdict(job, p, now),
                    Done::Synthesized(job, s) => session.handle_synthesized(job, s, now),
                    Done::Http(job, r) => session.handle_http(job, r, now),
                    Done::Agent(e) => session.handle_agent(e, now),
                }
            }
            e = async { driver.leg.as_mut().expect("guarded").events.recv().await }, if driver.leg.is_some() => {
                let now = Instant::now();
                match e {
                    Some(LegEvent::MediaStopped) => {
                        session.handle_agent(driver.agent_lost(now, "'s phone went silent"), now)
                    }
                    Some(e) => match agent_event(e) {
                        // An agent who hangs up while hearing a warm transfer's announcement
                        // never took the caller: they keep their place, as for a lost phone.
                        Some(AgentEvent::Ended(_)) if session.is_announcing_to_agent() => {
                            let lost = driver.agent_lost(now, " hung up during the announcement");
                            session.handle_agent(lost, now);
                        }
                        Some(a) if driver.follow_agent(&a, now) => session.handle_agent(a, now),
                        _ => {}
                    },
                    None => driver.leg = None,
                }
            }
            // Deadlines kept in `Queued`, not a fresh sleep each turn of the loop: the
            // caller's audio wakes this loop every 20 ms.
            _ = tokio::time::sleep_until(queue_due.unwrap_or(far).into()), if queue_due.is_some() => {
                let now = Instant::now();
                if let Some(event) = driver.on_queue_deadline(now) {
                    session.handle_agent(event, now);
                }
            }
            _ = timer => session.handle_timeout(Instant::now()),
        }
    }
    if let Some(acd) = &driver.services.agents.acd {
        // The agent (if any) is free of this call: wrap-up, or available again if it still
        // rang; a caller still in a line abandoned it (nothing happens if the agent answered).
        if let Some(agent) = driver.agent.take() {
            acd.released(&agent, &driver.call_id);
        }
        acd.leave(&driver.call_id, Leaving::Abandoned);
    }
    // Whatever synthesis is still running for this call stops; the agent leg (if any) hangs
    // up when dropped.
    for stop in driver.stops.values().chain(driver.cancels.values()) {
        stop.store(true, Ordering::Relaxed);
    }
}

/// The longest a feature code's confirmation may take to synthesise and play before the call
/// is ended anyway (the change is made before either).
const FEATURE_CODE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

const NO_FEATURE_CODE: &str = "That feature code cannot be used from this phone.";

/// A feature code dialled from an agent's phone (docs/agents.md): the agent's state changes
/// as the desk's buttons would change it (recorded the same way), the agent hears the outcome,
/// and voxnav hangs up.
async fn feature_code(services: Arc<Services>, call: AnsweredCall, agent: String) {
    let AnsweredCall {
        call_id,
        dialled,
        media,
        mut events,
        hangup,
        ..
    } = call;
    let dialled = dialled.unwrap_or_default();
    use crate::routing::{Requested, StateError};
    let (text, refused) = match (Requested::from_feature_code(&dialled), &services.agents.acd) {
        (Some(requested), Some(acd)) => match acd.request(&agent, requested) {
            Ok(()) => (requested.confirmation(), None),
            Err(e @ StateError::Busy(..)) => (
                "You are on a call. Your state follows the call until it ends.",
                Some(e.to_string()),
            ),
            Err(e) => (NO_FEATURE_CODE, Some(e.to_string())),
        },
        (None, _) => (NO_FEATURE_CODE, Some("no such feature code".into())),
        (_, None) => (
            NO_FEATURE_CODE,
            Some("this server keeps no agent states".into()),
        ),
    };
    match &refused {
        None => tracing::info!(%agent, %dialled, "feature code"),
        Some(why) => {
            tracing::warn!(%agent, %dialled, %why, "feature code refused");
            println!("voxnav: agent {agent} dialled {dialled}: refused: {why}");
        }
    }
    let text = text.to_string();
    let tts = services.tts.clone();
    let spoken = async {
        let pcm = match services.prompts.get(&text) {
            Some(pcm) => pcm.to_vec(),
            None => tokio::task::spawn_blocking(move || tts.speak_all(&text))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
        };
        const MARK: u64 = 1;
        media.play(pcm);
        media.mark(MARK);
        while let Some(e) = events.recv().await {
            if matches!(e, MediaEvent::PlayedOut { mark: MARK, .. }) {
                return;
            }
        }
    };
    // Hung up early, played out, or given up on: the call ends either way.
    let _ = tokio::time::timeout(FEATURE_CODE_LIMIT, spoken).await;
    tracing::info!(call = %call_id, "feature code call over");
    hangup("feature code done".into());
}

/// With `VOXNAV_DUMP_UTTERANCES=DIR`, every audio sent to recognition is written to
/// DIR/CALL-JOB.wav (8 kHz): what the recogniser heard, for diagnosing a misheard turn.
fn dump_utterance(call_id: &str, job: u64, audio: &[f32]) {
    let Some(dir) = std::env::var_os("VOXNAV_DUMP_UTTERANCES") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("{call_id}-{job}.wav"));
    let wav = crate::media::wav::Audio {
        samples: audio.to_vec(),
        sample_rate: 8000,
    };
    if let Err(e) = crate::media::wav::write(&path, &wav) {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

/// Writes a caller's message for `queue`: DIR/QUEUE/CALL.wav (8 kHz) and CALL.json (its
/// details). The queue name comes from the dialplan and the call id from the SIP stack:
/// neither may climb out of DIR.
fn save_message(
    dir: &std::path::Path,
    queue: &str,
    call_id: &str,
    pcm: &[i16],
    details: serde_json::Value,
) -> std::io::Result<std::path::PathBuf> {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let folder = dir.join(safe(queue));
    std::fs::create_dir_all(&folder)?;
    let path = folder.join(format!("{}.wav", safe(call_id)));
    let audio = crate::media::wav::Audio {
        samples: pcm.iter().map(|&s| f32::from(s) / 32768.0).collect(),
        sample_rate: 8000,
    };
    crate::media::wav::write(&path, &audio).map_err(std::io::Error::other)?;
    std::fs::write(path.with_extension("json"), format!("{details}\n"))?;
    Ok(path)
}

/// The agent leg's events as the session sees them.
fn agent_event(e: LegEvent) -> Option<AgentEvent> {
    Some(match e {
        LegEvent::Ringing(_) => AgentEvent::Ringing,
        LegEvent::Answered => AgentEvent::Answered,
        LegEvent::Failed { status, reason } => AgentEvent::Failed(format!("{status} {reason}")),
        LegEvent::Audio(pcm, _) => AgentEvent::Audio(pcm),
        LegEvent::Ended { why, .. } => AgentEvent::Ended(why),
        LegEvent::Drained(_) | LegEvent::MediaStopped => return None,
    })
}

struct Driver {
    call_id: String,
    services: Arc<Services>,
    done: UnboundedSender<Done>,
    span: tracing::Span,
    /// Stop flags of synthesis jobs in flight.
    stops: HashMap<u64, Arc<AtomicBool>>,
    /// Cancel flags of recognitions in flight.
    cancels: HashMap<u64, Arc<AtomicBool>>,
    leg: Option<Leg>,
    /// The agent of the agents file whose phone the leg rings or talks on.
    agent: Option<String>,
    /// The transfer to a queue of the agents file, until an agent answers (the caller hears
    /// the hold audio while it waits or an agent's phone rings).
    queued: Option<Queued>,
    /// The same once an agent answered, while they talk: the caller goes back to it if the
    /// agent's phone goes silent.
    talking_from: Option<Queued>,
    media: crate::net::media::MediaHandle,
    hangup: Option<crate::net::HangupFn>,
    /// Asks the PBX the call came through to transfer it (REFER).
    refer: crate::net::ReferFn,
    /// The URI of the REFER in progress, once sent, and whether the PBX accepted it.
    referred: Option<(String, bool)>,
}

/// A transfer to a queue of the agents file, until an agent answers.
struct Queued {
    target: String,
    queue: String,
    reason: String,
    transcript: Vec<String>,
    priority: u8,
    /// When the transfer began (the caller's wait, for the call record).
    since: Instant,
    /// After this, no more agents are tried: the dialplan's fallback.
    give_up: Instant,
    /// When to ask the ACD again (None while an agent's phone rings).
    next_try: Option<Instant>,
    /// When the caller next hears their place in the line (None: never).
    next_announce: Option<Instant>,
}

impl Driver {
    /// The next deadline of the queued transfer, if any.
    fn queue_deadline(&self) -> Option<Instant> {
        let q = self.queued.as_ref()?;
        let announce = q.next_announce.filter(|_| q.next_try.is_some());
        [q.next_try, announce].into_iter().flatten().min()
    }

    /// The queued transfer's deadline came: ask the ACD again and ring the agent it picks,
    /// or, once the caller has waited `queue_wait`, give up (the event for the session: the
    /// fallback); or tell the caller their place in the line (the event: an announcement).
    fn on_queue_deadline(&mut self, now: Instant) -> Option<AgentEvent> {
        let s = self.services.clone();
        let q = self.queued.as_mut()?;
        if q.next_try.is_some_and(|t| t <= now) {
            match s.agents.route(&q.target, &self.call_id, q.priority) {
                Ok(route) => {
                    let (reason, transcript) = (q.reason.clone(), q.transcript.clone());
                    q.next_try = None;
                    if route.agent.is_none() {
                        self.queued = None;
                    }
                    self.ring(route, reason, transcript);
                    return None;
                }
                Err(_) if now >= q.give_up => {
                    let q = self.queued.take()?;
                    if let Some(acd) = &s.agents.acd {
                        acd.leave(&self.call_id, Leaving::TimedOut);
                    }
                    let waited = s.agents.queue_wait.as_secs();
                    return Some(AgentEvent::Failed(format!(
                        "no agent of queue {} was free within {waited} s",
                        q.queue
                    )));
                }
                Err(_) => q.next_try = Some(now + QUEUE_RETRY),
            }
        }
        if q.next_announce.is_some_and(|t| t <= now) && q.next_try.is_some() {
            q.next_announce = Some(now + s.agents.announce_every);
            let place = s.agents.acd.as_ref()?.position(&q.queue, &self.call_id)?;
            let wait =
                (place.estimated_wait).map_or("unknown".into(), |w| format!("{} s", w.as_secs()));
            println!(
                "voxnav: call {} waits in queue {}: position {}, estimated wait {wait}",
                self.call_id, q.queue, place.position
            );
            return Some(AgentEvent::Queued {
                position: place.position,
                estimated_wait: place.estimated_wait,
            });
        }
        None
    }

    /// Rings the transfer's seat or agent (the leg's events follow).
    fn ring(&mut self, Route { uri, agent }: Route, reason: String, transcript: Vec<String>) {
        let s = self.services.clone();
        self.agent = agent;
        let _ = self
            .done
            .send(Done::Agent(AgentEvent::Dialling { uri: uri.clone() }));
        let config = LegConfig {
            target: uri,
            from_user: "voxnav".into(),
            headers: vec![
                ("Subject".into(), format!("voxnav transfer: {reason}")),
                ("X-Voxnav-Reason".into(), reason),
                ("X-Voxnav-Transcript".into(), transcript.join(" | ")),
                ("X-Voxnav-Call".into(), self.call_id.clone()),
            ],
            answer_timeout: s.agents.ring_timeout,
            // Caller audio to the agent is kept short (a relay, not a queue).
            max_queued_frames: Some(5),
            media_timeout: s.agents.agent_silence,
            credentials: None,
        };
        let phones = s.agents.web_phones.as_deref();
        self.leg = Some(crate::net::webphone::place_agent_leg(
            &s.media, phones, config,
        ));
    }

    /// Keeps the agent's state with their phone's leg: answered, not answered (not ready),
    /// ended (wrap-up). An agent who does not answer a queued transfer is not the end of it:
    /// the next free agent is rung at once, the caller keeping their place in the line (the
    /// event is not for the session then: false).
    fn follow_agent(&mut self, event: &AgentEvent, now: Instant) -> bool {
        let (Some(agent), Some(acd)) = (self.agent.clone(), self.services.agents.acd.clone())
        else {
            return true;
        };
        match event {
            AgentEvent::Answered => {
                acd.answered(&agent, &self.call_id);
                if let Some(q) = self.queued.take() {
                    self.services.reporter.report(Report::QueueAnswered {
                        call_id: self.call_id.clone(),
                        queue: q.queue.clone(),
                        agent: agent.clone(),
                        waited: now.saturating_duration_since(q.since),
                    });
                    self.talking_from = Some(q);
                }
            }
            AgentEvent::Failed(why) => {
                acd.not_answered(&agent, &self.call_id);
                self.agent = None;
                if let Some(q) = self.queued.as_mut() {
                    tracing::info!(%agent, %why, "the agent did not answer: the next one");
                    // The rung-out leg's last events (its end) are not the transfer's.
                    self.leg = None;
                    q.next_try = Some(now);
                    let uri = format!("queue:{}", q.queue);
                    let _ = self.done.send(Done::Agent(AgentEvent::Dialling { uri }));
                    return false;
                }
            }
            AgentEvent::Ended(_) => {
                acd.released(&agent, &self.call_id);
                self.agent = None;
                self.talking_from = None;
            }
            _ => {}
        }
        true
    }

    /// How the REFER goes, as the session sees a transfer: accepted (202) is the PBX taking
    /// the caller (connected: the hold audio stops); its call answering ends ours (the PBX
    /// has the caller; we send BYE); a refusal before that is a failed transfer (the
    /// dialplan's fallback), a failure after it the apology then the fallback.
    fn on_signal(&mut self, signal: crate::net::CallSignal) -> Option<AgentEvent> {
        use crate::net::CallSignal;
        let (uri, accepted) = self.referred.clone()?;
        Some(match signal {
            CallSignal::ReferAccepted => {
                self.referred = Some((uri.clone(), true));
                println!("voxnav: call {}: REFER to {uri} accepted", self.call_id);
                AgentEvent::Answered
            }
            CallSignal::ReferSucceeded => {
                self.referred = None;
                println!(
                    "voxnav: call {}: transferred by REFER to {uri}",
                    self.call_id
                );
                AgentEvent::Ended(format!("transferred by REFER to {uri}"))
            }
            CallSignal::ReferFailed { status, reason } => {
                self.referred = None;
                let why = format!("REFER to {uri}: {status} {reason}");
                println!("voxnav: call {}: {why}", self.call_id);
                // Before the 202 the transfer never started; after it, the PBX lost the
                // caller's new call and gives them back.
                if accepted {
                    AgentEvent::Lost {
                        requeued: false,
                        why,
                    }
                } else {
                    AgentEvent::Failed(why)
                }
            }
        })
    }

    /// The agent's phone sent no RTP for `transfer.agent_silence_s` mid-call (it is gone; no
    /// BYE came), or the agent hung up during a warm transfer's announcement (`what` says
    /// which). Its leg is hung up; the agent is not ready; a caller who came through a queue
    /// goes back to the head of its line at once (the event for the session says which: the
    /// apology, then the hold audio or the fallback).
    fn agent_lost(&mut self, now: Instant, what: &str) -> AgentEvent {
        let s = self.services.clone();
        // Dropping the leg hangs it up; its late events are not the caller's.
        self.leg = None;
        let agent = self.agent.take().unwrap_or_default();
        let why = match agent.as_str() {
            "" => format!("the agent{what}"),
            a => format!("agent {a}{what}"),
        };
        tracing::warn!(%agent, "{why}");
        let back = match &s.agents.acd {
            Some(acd) if !agent.is_empty() => acd.lost(&agent, &self.call_id),
            _ => false,
        };
        let from = self.talking_from.take();
        let requeued = match (back, from) {
            (true, Some(mut q)) => {
                q.give_up = now + s.agents.queue_wait;
                // Nobody is rung until the caller has heard the apology (`RejoinQueue`).
                q.next_try = None;
                // The apology says they are next; a long wait still hears its place.
                q.next_announce =
                    (!s.agents.announce_every.is_zero()).then(|| now + s.agents.announce_every);
                self.queued = Some(q);
                true
            }
            _ => false,
        };
        println!(
            "voxnav: call {}: {why}; {}",
            self.call_id,
            if requeued {
                "back at the head of the queue"
            } else {
                "the transfer's fallback"
            }
        );
        AgentEvent::Lost { requeued, why }
    }

    fn hang_up(&mut self, reason: String) {
        if let Some(h) = self.hangup.take() {
            h(reason);
        }
    }

    /// Runs `job` on the blocking pool inside the call's span; its result comes back as `Done`.
    fn spawn(&self, job: impl FnOnce() -> Done + Send + 'static) {
        let (done, span) = (self.done.clone(), self.span.clone());
        tokio::task::spawn_blocking(move || {
            let _call = span.enter();
            let _ = done.send(job());
        });
    }

    fn execute(&mut self, out: Output) {
        let s = self.services.clone();
        match out {
            Output::Play { pcm, mark } => {
                self.media.play(pcm);
                self.media.mark(mark);
            }
            Output::StopPlayback => self.media.flush(),
            Output::PausePlayback => self.media.pause(true),
            Output::ResumePlayback => self.media.pause(false),
            Output::Recognize {
                job,
                audio,
                speculative,
            } => {
                let (running, waiting) = s.asr.queue();
                s.reporter.report(Report::AsrQueue { running, waiting });
                if !speculative && waiting >= KEYPAD_OFFER_QUEUE {
                    let why = format!("{waiting} recognitions ahead in the queue");
                    let _ = self.done.send(Done::Recognized(job, Err(why)));
                    return;
                }
                let cancel = Arc::new(AtomicBool::new(false));
                self.cancels.insert(job, cancel.clone());
                dump_utterance(&self.call_id, job, &audio);
                let allowed = super::session::recognition_deadline(audio.len());
                self.spawn(move || {
                    let options = RecognizeOptions {
                        deadline: Some(Instant::now() + allowed),
                        cancel: Some(cancel),
                    };
                    let heard = s
                        .asr
                        .recognize(&audio, 8000, &options)
                        .inspect(|t| {
                            tracing::debug!(
                                speculative,
                                engine = t.engine,
                                audio_ms = t.timings.audio.as_millis() as u64,
                                queued_ms = t.timings.queued.as_millis() as u64,
                                processing_ms = t.timings.processing.as_millis() as u64,
                                "recognised"
                            );
                            s.reporter.report(Report::EngineWait {
                                engine: "asr",
                                waited: t.timings.queued,
                            });
                            s.reporter.report(Report::Recognized { engine: t.engine });
                        })
                        .map(|t| (t.text, t.confidence))
                        .map_err(|e| e.to_string());
                    if let Err(e) = &heard
                        && !speculative
                        && e != "cancelled"
                    {
                        tracing::warn!("recognition failed: {e}");
                    }
                    Done::Recognized(job, heard)
                });
            }
            Output::CancelRecognition { job } => {
                if let Some(c) = self.cancels.remove(&job) {
                    c.store(true, Ordering::Relaxed);
                }
            }
            Output::JudgeTurn { job, audio } => {
                let Some(model) = s.turn_model.clone() else {
                    return;
                };
                self.spawn(move || {
                    let started = Instant::now();
                    let p = model.complete_probability(&audio).unwrap_or_else(|e| {
                        tracing::warn!("end-of-turn model failed: {e}");
                        0.0 // incomplete: the silence rule decides
                    });
                    tracing::debug!(
                        complete = p,
                        took_ms = started.elapsed().as_millis() as u64,
                        "end-of-turn verdict"
                    );
                    Done::Verdict(job, p)
                });
            }
            Output::Synthesize { job, texts } => {
                let stop = Arc::new(AtomicBool::new(false));
                self.stops.insert(job, stop.clone());
                let done = self.done.clone();
                self.spawn(move || {
                    let clause = |pcm| Done::Synthesized(job, Synthesis::Clause(pcm));
                    for text in texts {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(cached) = s.prompts.get(&text) {
                            let mut pcm = cached.to_vec();
                            pcm.extend(std::iter::repeat_n(0i16, 8 * BREATH_MS));
                            let _ = done.send(clause(pcm));
                            continue;
                        }
                        // Dynamic text: each clause goes out as soon as it is synthesised.
                        let spoken = s.tts.speak(&text, &mut |c| {
                            if stop.load(Ordering::Relaxed) {
                                return ControlFlow::Break(());
                            }
                            let _ = done.send(clause(c.pcm));
                            ControlFlow::Continue(())
                        });
                        match spoken {
                            Ok(stats) => {
                                s.reporter.report(Report::EngineWait {
                                    engine: "tts",
                                    waited: stats.queued,
                                });
                                let _ = done.send(clause(vec![0; 8 * BREATH_MS]));
                            }
                            Err(e) => tracing::error!(%text, "TTS failed: {e}"),
                        }
                    }
                    Done::Synthesized(job, Synthesis::Done)
                });
            }
            Output::StopSynthesis { job } => {
                if let Some(stop) = self.stops.remove(&job) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Output::Http {
                job,
                method,
                url,
                body,
                timeout,
            } => {
                let backends = s.backends.clone();
                self.spawn(move || {
                    let r = backends.fetch(&method, &url, body.as_deref(), timeout);
                    if let Err(e) = &r {
                        tracing::warn!(%url, "backend request failed: {e}");
                    }
                    Done::Http(job, r)
                });
            }
            Output::Transfer {
                target,
                reason,
                transcript,
                priority,
            } => {
                let now = Instant::now();
                let queued = |queue: String, next_try| Queued {
                    target: target.clone(),
                    queue,
                    reason: reason.clone(),
                    transcript: transcript.clone(),
                    priority,
                    since: now,
                    give_up: now + s.agents.queue_wait,
                    next_try,
                    next_announce: (!s.agents.announce_every.is_zero())
                        .then_some(now + FIRST_ANNOUNCEMENT),
                };
                // A queue the PBX takes back: REFER, nothing bridged.
                let refer_to = (target.strip_prefix("queue:")).and_then(|q| s.agents.refer.get(q));
                if let Some(uri) = refer_to {
                    (self.refer)(uri.clone());
                    self.referred = Some((uri.clone(), false));
                    let uri = format!("refer:{uri}");
                    let _ = self.done.send(Done::Agent(AgentEvent::Dialling { uri }));
                    return;
                }
                match s.agents.route(&target, &self.call_id, priority) {
                    Ok(route) => {
                        // An agent of a queue: kept, so a ring-out goes to the next agent.
                        if let Some(queue) = target.strip_prefix("queue:")
                            && route.agent.is_some()
                        {
                            self.queued = Some(queued(queue.to_string(), None));
                        }
                        self.ring(route, reason, transcript)
                    }
                    // The queue's agents are all busy: the caller waits (hold audio) for one.
                    Err(NoRoute::NobodyFree(queue)) if !s.agents.queue_wait.is_zero() => {
                        if let Some(acd) = &s.agents.acd {
                            acd.wait(&queue, &self.call_id, priority);
                        }
                        let _ = self.done.send(Done::Agent(AgentEvent::Dialling {
                            uri: format!("queue:{queue}"),
                        }));
                        self.queued = Some(queued(queue, Some(now + QUEUE_RETRY)));
                    }
                    Err(why) => {
                        let _ = self
                            .done
                            .send(Done::Agent(AgentEvent::Failed(why.to_string())));
                    }
                }
            }
            Output::ToAgent(pcm) => {
                if let Some(l) = &self.leg {
                    let _ = l.commands.send(LegCommand::Audio(pcm));
                }
            }
            Output::AgentDigit(d) => {
                if let Some(l) = &self.leg {
                    let _ = l.commands.send(LegCommand::Digit(d));
                }
            }
            Output::RejoinQueue => {
                if let Some(q) = self.queued.as_mut() {
                    q.next_try = Some(Instant::now());
                }
            }
            Output::CancelTransfer => {
                if let Some(acd) = &s.agents.acd {
                    if let Some(agent) = self.agent.take() {
                        acd.released(&agent, &self.call_id);
                    }
                    acd.leave(&self.call_id, Leaving::Elsewhere);
                }
                self.queued = None;
                if let Some(l) = self.leg.take() {
                    let _ = l.commands.send(LegCommand::Hangup);
                }
            }
            Output::HangupAgent => {
                if self.queued.take().is_some()
                    && let Some(acd) = &s.agents.acd
                {
                    acd.leave(&self.call_id, Leaving::Abandoned);
                }
                if let Some(l) = self.leg.take() {
                    let _ = l.commands.send(LegCommand::Hangup);
                }
            }
            Output::SaveMessage { queue, pcm } => {
                let call_id = self.call_id.clone();
                // The call's transcript and caller go beside the audio, for whoever calls back.
                let details = serde_json::json!({
                    "call": call_id,
                    "queue": queue,
                    "seconds": pcm.len() as f64 / 8000.0,
                    "saved_ms": crate::ops::live::now_ms(),
                });
                tokio::task::spawn_blocking(move || {
                    match save_message(&s.agents.messages_dir, &queue, &call_id, &pcm, details) {
                        Ok(path) => s.reporter.report(Report::MessageSaved {
                            call_id,
                            queue,
                            path: path.display().to_string(),
                            seconds: pcm.len() as f64 / 8000.0,
                        }),
                        Err(e) => tracing::error!(%queue, "saving a caller's message: {e}"),
                    }
                });
            }
            Output::Callback(request) => match &s.agents.callbacks {
                Some(callbacks) => {
                    let _ = callbacks.send(request);
                }
                None => tracing::error!(
                    queue = %request.queue,
                    "a callback was asked for, but the server has no agents file or no \
                     transfer.callback_uri: it is not placed"
                ),
            },
            Output::Hangup { reason } => self.hang_up(reason),
            Output::Report(r) => s.reporter.report(r),
        }
    }
}
