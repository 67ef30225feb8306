//! The dialplan on a live call: the media task feeds it 20 ms frames of the caller's audio and
//! keypad digits and plays what it queues; it runs the endpointer, recognition (on the shared
//! ASR pool, off the media task), the engine, synthesis and backend requests. Every turn's
//! decision record is printed as a `voxnav: decision {json}` line.
//!
//! Turn-taking: the no-input timer starts when the prompt has finished playing; caller speech
//! (240 ms of voice, so "uh-huh" does not count, see `vad`) or a keypad press stops a prompt
//! that allows barge-in; digits are collected up to the ask's maximum, `#`, or a 3 s pause.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use super::transfer::{AgentBridge, AgentDirectory, BridgeStatus};
use super::vad::{Endpointer, EndpointerConfig, VadEvent};
use crate::dialplan::engine::{Action, CallEngine, Event, Step};
use crate::dialplan::registry::HotlineRegistry;
use crate::net::call_media::CallBrain;
use crate::speech::{RecognizeOptions, Recognizer, Synthesizer};

/// What calls share: the hotline, the engines, initial variables.
pub struct Services {
    pub registry: Arc<HotlineRegistry>,
    pub asr: Arc<dyn Recognizer>,
    pub tts: Arc<dyn Synthesizer>,
    pub vars: BTreeMap<String, String>,
    /// Synthesised static prompts (texts without `{{variables}}`), by text.
    pub prompts: PromptCache,
    /// Where transfers are dialled.
    pub agents: AgentDirectory,
    /// Where call records go (None: not kept).
    pub records: Option<crate::ops::records::RecordStore>,
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

/// What recognition returns to the brain: (text, confidence) or why it failed.
type Heard = Result<(String, f32), String>;

/// Work finished off the media task.
enum Done {
    /// Audio of a reply, clause by clause as synthesis produces it (the first clause plays
    /// while later ones are still being synthesised).
    Clause {
        pcm: Vec<i16>,
        barge_in: bool,
    },
    /// The Say actions of a step are all synthesised; the actions after them.
    Spoken {
        rest: Vec<Action>,
    },
    Heard(Heard),
    /// A speculative recognition of the first `samples` samples of an utterance.
    Speculated {
        samples: usize,
        heard: Heard,
    },
    Http(Result<(u16, String), String>),
}

/// Recognition started at a pause, before the endpoint.
struct Speculation {
    samples: usize,
    heard: Option<Heard>,
}

/// Callers ahead in the ASR queue beyond which a caller is offered the keypad rather than
/// being left to wait in silence.
const KEYPAD_OFFER_QUEUE: usize = 2;
/// Keys typed without the closing `#` are taken as complete after this pause.
const INTER_DIGIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Recognition (queue wait included) past this gives up and offers the keypad.
const ASR_DEADLINE: Duration = Duration::from_secs(5);

struct Listening {
    timeout: Duration,
    dtmf_max: usize,
    /// When the no-input timer fires (set once the prompt has played out).
    deadline: Option<Instant>,
}

/// One call's dialplan driver.
pub struct Brain {
    call_id: String,
    /// The call's log span (made by the driver); threads the call starts enter it too.
    span: tracing::Span,
    services: Arc<Services>,
    engine: CallEngine,
    endpointer: Endpointer,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    listening: Option<Listening>,
    /// The last Listen the dialplan asked for (timeout, digits), for the keypad offer.
    last_listen: (u64, usize),
    /// When the last keypad digit of an unfinished entry came.
    last_digit: Option<Instant>,
    /// Whether the audio now queued may be interrupted.
    barge_in: bool,
    digits: String,
    /// Hang up once the queued audio has played (a goodbye, a transfer notice).
    end_after_audio: Option<String>,
    /// Work in flight (TTS, ASR, HTTP): input waits for it.
    busy: usize,
    /// An utterance that ended while work was in flight, and when it ended.
    pending: Option<(Vec<f32>, Instant)>,
    /// Recognition started at the caller's last pause.
    speculation: Option<Speculation>,
    /// Set to stop the synthesis in flight (barge-in).
    stop_synthesis: Arc<std::sync::atomic::AtomicBool>,
    /// The turn being timed: when the endpoint fired, ASR finished, the engine decided.
    timing: Option<TurnTiming>,
    /// A transfer in progress: the agent's leg (ringing, then bridged).
    bridge: Option<AgentBridge>,
    /// The decision record of a timed turn, printed with its latency once the reply plays.
    pending_decision: Option<serde_json::Value>,
    /// For the call's outcome: the bot answered something, the dialplan ended the call, the
    /// caller reached an agent.
    answered: bool,
    dialplan_ended: bool,
    reached_agent: bool,
    /// The reason of the last transfer the dialplan made.
    transfer_reason: Option<String>,
}

/// One `voxnav: KIND {json}` line on stdout (what tests and log shippers read).
fn print_record(kind: &str, json: &serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "voxnav: {kind} {json}");
}

/// Per-turn latency marks (printed as `voxnav: latency {json}` when the reply is queued).
#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    endpoint: Instant,
    /// The text came from recognition started at a pause.
    speculative: bool,
    asr_done: Option<Instant>,
    decided: Option<Instant>,
}

impl Brain {
    pub fn new(call_id: &str, caller: &str, services: Arc<Services>) -> Self {
        let (tx, rx) = channel();
        let engine = CallEngine::new(services.registry.current(), services.vars.clone());
        crate::ops::live::started(call_id, &engine.hotline().plan.name);
        if let Some(records) = &services.records {
            records.send(crate::ops::records::RecordEvent::CallStarted {
                call_id: call_id.to_string(),
                caller: caller.to_string(),
                hotline: engine.hotline().plan.name.clone(),
                dialplan_version: services.registry.version(),
                started_ms: crate::ops::live::now_ms(),
            });
        }
        Self {
            call_id: call_id.to_string(),
            span: tracing::Span::current(),
            services,
            engine,
            endpointer: Endpointer::new(EndpointerConfig::default()),
            tx,
            rx,
            listening: None,
            last_listen: (8000, 10),
            last_digit: None,
            barge_in: true,
            digits: String::new(),
            end_after_audio: None,
            busy: 0,
            pending: None,
            speculation: None,
            stop_synthesis: Default::default(),
            timing: None,
            bridge: None,
            pending_decision: None,
            answered: false,
            dialplan_ended: false,
            reached_agent: false,
            transfer_reason: None,
        }
    }

    /// Prints a `voxnav: transfer {json}` line (what ops and tests follow a bridge by).
    fn log_transfer(&self, status: &str, why: &str) {
        let Some(b) = self.bridge.as_ref() else {
            return;
        };
        let json = serde_json::json!({
            "call": self.call_id,
            "agent": b.uri,
            "status": status,
            "why": why,
            "after_ms": b.elapsed().as_millis() as u64,
            "frames_to_agent": b.to_agent,
            "frames_to_caller": b.to_caller,
        });
        print_record("transfer", &json);
        tracing::info!(agent = %b.uri, status, why, "transfer");
    }

    /// Follows the agent leg; Some(reason) ends the call.
    fn tick_bridge(&mut self, out: &mut VecDeque<i16>) -> Option<String> {
        let change = self.bridge.as_mut()?.tick(out)?;
        match change {
            BridgeStatus::Ringing => None,
            BridgeStatus::Connected => {
                self.log_transfer("connected", "");
                self.reached_agent = true;
                crate::ops::metrics::metrics()
                    .transfer_attempts_total
                    .inc(&["connected"]);
                crate::ops::live::update(&self.call_id, |c| c.state = "with agent".into());
                None
            }
            BridgeStatus::Failed(why) => {
                crate::ops::metrics::metrics()
                    .transfer_attempts_total
                    .inc(&["failed"]);
                crate::ops::live::update(&self.call_id, |c| c.state = "bot".into());
                // Busy, no answer, unreachable: back to the dialplan's fallback.
                self.log_transfer("failed", &why);
                self.bridge = None;
                self.handle(Event::TransferFailed(why));
                None
            }
            BridgeStatus::Ended(why) => {
                self.log_transfer("ended", &why);
                self.bridge = None;
                Some(format!("transferred call ended: {why}"))
            }
        }
    }

    /// Prints a turn's decision record. A timed turn that speaks waits for its first reply
    /// audio, so that the record carries the turn's latency too (`flush_decision`).
    fn log(&mut self, step: &Step) {
        if let Some(d) = &step.decision {
            let turn = crate::dialplan::sim::BotTurn {
                decision: d.clone(),
                actions: step.actions.clone(),
            };
            let mut json = crate::dialplan::sim::to_json(&turn);
            json["call"] = serde_json::Value::String(self.call_id.clone());
            self.count_turn(&json);
            self.flush_decision(None);
            let speaks = step.actions.iter().any(|a| matches!(a, Action::Say { .. }));
            if self.timing.is_some() && speaks {
                self.pending_decision = Some(json);
            } else {
                self.record_decision(json);
            }
        }
    }

    /// Metrics and the live view of one decision.
    fn count_turn(&mut self, json: &serde_json::Value) {
        let m = crate::ops::metrics::metrics();
        let text = |k: &str| json[k].as_str().unwrap_or_default().to_string();
        let (input, decision, reason) = (text("input"), text("decision"), text("reason"));
        if input != "(call start)" {
            m.turns_total.inc(&[&decision]);
            if let Some(intent) = json["intent"].as_str() {
                m.intents_total.inc(&[intent]);
            }
            if input == "(silence)" {
                m.fallbacks_total.inc(&["no_input"]);
            } else if reason.starts_with("not understood") {
                m.fallbacks_total.inc(&["no_match"]);
            }
        }
        self.answered |= decision == "answer";
        let (node, turn) = (text("node"), json["turn"].as_u64().unwrap_or(0) as u32);
        let transcript = self.engine.transcript().to_vec();
        crate::ops::live::update(&self.call_id, |c| {
            c.node = node;
            c.turns = turn;
            c.transcript = transcript;
        });
    }

    /// Prints the decision record held for its latency, with it if known.
    fn flush_decision(&mut self, latency: Option<&serde_json::Value>) {
        if let Some(mut json) = self.pending_decision.take() {
            if let Some(l) = latency {
                json["latency"] = l.clone();
            }
            self.record_decision(json);
        }
    }

    /// A finished decision record: printed, and written to the call records.
    fn record_decision(&mut self, json: serde_json::Value) {
        print_record("decision", &json);
        tracing::info!(
            input = json["input"].as_str().unwrap_or_default(),
            intent = json["intent"].as_str(),
            decision = json["decision"].as_str().unwrap_or_default(),
            reason = json["reason"].as_str().unwrap_or_default(),
            node = json["node"].as_str().unwrap_or_default(),
            "turn"
        );
        if let Some(records) = &self.services.records {
            records.send(crate::ops::records::RecordEvent::Turn {
                call_id: self.call_id.clone(),
                at_ms: crate::ops::live::now_ms(),
                record: json,
            });
        }
    }

    fn handle(&mut self, event: Event) {
        let step = self.engine.handle(event);
        if let Some(t) = self.timing.as_mut() {
            t.decided.get_or_insert(Instant::now());
        }
        self.log(&step);
        self.apply(step.actions);
    }

    /// Runs actions in order; Say actions are synthesised together off the media task.
    fn apply(&mut self, actions: Vec<Action>) {
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
            let (services, tx) = (self.services.clone(), self.tx.clone());
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            self.stop_synthesis = stop.clone();
            self.busy += 1;
            let span = self.span.clone();
            std::thread::spawn(move || {
                let _call = span.enter();
                use std::sync::atomic::Ordering;
                // A breath between the texts of a turn.
                let breath = || std::iter::repeat_n(0i16, 8 * 250);
                for t in texts {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(cached) = services.prompts.get(&t) {
                        let mut pcm = cached.to_vec();
                        pcm.extend(breath());
                        let _ = tx.send(Done::Clause { pcm, barge_in });
                        continue;
                    }
                    // Dynamic text: each clause goes out as soon as it is synthesised.
                    let spoken = services.tts.speak(&t, &mut |clause| {
                        if stop.load(Ordering::Relaxed) {
                            return std::ops::ControlFlow::Break(());
                        }
                        let _ = tx.send(Done::Clause {
                            pcm: clause.pcm,
                            barge_in,
                        });
                        std::ops::ControlFlow::Continue(())
                    });
                    match spoken {
                        Ok(stats) => {
                            crate::ops::metrics::metrics()
                                .speech_queue_wait_seconds
                                .observe(&["tts"], stats.queued);
                            let _ = tx.send(Done::Clause {
                                pcm: breath().collect(),
                                barge_in,
                            });
                        }
                        Err(e) => tracing::error!(text = %t, "TTS failed: {e}"),
                    }
                }
                let _ = tx.send(Done::Spoken { rest });
            });
            return;
        }
        for action in rest {
            match action {
                Action::Say { .. } => {}
                Action::Listen {
                    timeout_ms,
                    dtmf_max,
                    ..
                } => {
                    self.endpointer.reset();
                    self.speculation = None;
                    self.last_listen = (timeout_ms, dtmf_max);
                    self.listening = Some(Listening {
                        timeout: Duration::from_millis(timeout_ms),
                        dtmf_max,
                        deadline: None,
                    });
                }
                Action::Http {
                    method,
                    url,
                    body,
                    timeout_ms,
                } => {
                    let (tx, span) = (self.tx.clone(), self.span.clone());
                    self.busy += 1;
                    std::thread::spawn(move || {
                        let _call = span.enter();
                        let r = crate::net::http::fetch(
                            &method,
                            &url,
                            body.as_deref(),
                            Duration::from_millis(timeout_ms),
                        );
                        if let Err(e) = &r {
                            tracing::warn!(%url, "backend request failed: {e}");
                        }
                        let _ = tx.send(Done::Http(r));
                    });
                }
                Action::Transfer {
                    target,
                    reason,
                    transcript,
                } => {
                    crate::ops::metrics::metrics()
                        .transfers_total
                        .inc(&[&reason]);
                    self.transfer_reason = Some(reason.clone());
                    self.transfer(&target, &reason, &transcript);
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
    }

    /// The reply of a timed turn is queued: its first packet leaves on the next 20 ms tick.
    fn log_latency(&mut self, t: TurnTiming) {
        let now = Instant::now();
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_millis() as u64;
        let asr = t.asr_done.unwrap_or(t.endpoint);
        let decided = t.decided.unwrap_or(asr);
        let json = serde_json::json!({
            "call": self.call_id,
            "endpoint_silence_ms": EndpointerConfig::default().end_silence_ms,
            "speculative": t.speculative,
            "asr_ms": ms(t.endpoint, asr),
            "decide_ms": ms(asr, decided),
            "reply_audio_ms": ms(decided, now),
            "detected_to_audio_ms": ms(t.endpoint, now) + 20,
        });
        print_record("latency", &json);
        let h = &crate::ops::metrics::metrics().turn_latency_seconds;
        let since = |a: Instant, b: Instant| b.saturating_duration_since(a);
        h.observe(&["asr"], since(t.endpoint, asr));
        h.observe(&["decide"], since(asr, decided));
        h.observe(&["reply_audio"], since(decided, now));
        let detected = since(t.endpoint, now) + Duration::from_millis(20);
        h.observe(&["detected_to_audio"], detected);
        let silence = EndpointerConfig::default().end_silence_ms as u64;
        h.observe(
            &["voice_to_voice"],
            detected + Duration::from_millis(silence),
        );
        self.flush_decision(Some(&json));
    }

    /// The utterance that ended at `endpoint`: the speculative result if it covered exactly
    /// this audio, else recognition now (or the keypad, when the ASR queue is too long).
    fn recognise(&mut self, audio: Vec<f32>, endpoint: Instant) {
        self.listening = None;
        self.timing = Some(TurnTiming {
            endpoint,
            speculative: false,
            asr_done: None,
            decided: None,
        });
        if let Some(spec) = self.speculation.take()
            && spec.samples == audio.len()
            && let Some(heard) = spec.heard
        {
            if let Some(t) = self.timing.as_mut() {
                t.speculative = true;
            }
            self.on_heard(heard);
            return;
        }
        self.note_asr_queue();
        let (_, waiting) = self.services.asr.queue();
        if waiting >= KEYPAD_OFFER_QUEUE {
            self.on_heard(Err(format!("{waiting} callers ahead in the ASR queue")));
            return;
        }
        self.spawn_recognition(audio, Done::Heard);
    }

    /// Recognises `audio` off the media task (the shared ASR pool, `ASR_DEADLINE`); `done`
    /// wraps the result for `tick`.
    fn spawn_recognition(
        &mut self,
        audio: Vec<f32>,
        done: impl FnOnce(Heard) -> Done + Send + 'static,
    ) {
        let (asr, tx, span) = (
            self.services.asr.clone(),
            self.tx.clone(),
            self.span.clone(),
        );
        self.busy += 1;
        std::thread::spawn(move || {
            let _call = span.enter();
            let options = RecognizeOptions {
                deadline: Some(Instant::now() + ASR_DEADLINE),
            };
            let heard = asr
                .recognize(&audio, 8000, &options)
                .inspect(|t| {
                    crate::ops::metrics::metrics()
                        .speech_queue_wait_seconds
                        .observe(&["asr"], t.timings.queued)
                })
                .map(|t| (t.text, t.confidence))
                .map_err(|e| e.to_string());
            let _ = tx.send(done(heard));
        });
    }

    /// Rings the seat for a transfer target, or tells the dialplan there is none.
    fn transfer(&mut self, target: &str, reason: &str, transcript: &[String]) {
        match self.services.agents.resolve(target) {
            Some(uri) => {
                // Dialled now, while the notice plays; hold audio follows it.
                self.bridge = Some(AgentBridge::dial(
                    &uri,
                    reason,
                    transcript,
                    &self.call_id,
                    self.services.agents.ring_timeout,
                ));
                self.log_transfer("dialling", reason);
                crate::ops::live::update(&self.call_id, |c| c.state = "transfer ringing".into());
            }
            None => self.handle(Event::TransferFailed(format!(
                "no agent seat configured for {target}"
            ))),
        }
    }

    /// The ASR queue gauges (`voxnav_asr_queue_*`), as this call sees the shared engine.
    fn note_asr_queue(&self) {
        let (running, waiting) = self.services.asr.queue();
        let m = crate::ops::metrics::metrics();
        m.asr_queue_running
            .store(running as u64, std::sync::atomic::Ordering::Relaxed);
        m.asr_queue_waiting
            .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts recognising at a pause, if the engine is idle (speculation never makes another
    /// caller wait).
    fn speculate(&mut self, audio: Vec<f32>) {
        if self.services.asr.queue() != (0, 0) {
            return;
        }
        let samples = audio.len();
        self.speculation = Some(Speculation {
            samples,
            heard: None,
        });
        self.spawn_recognition(audio, move |heard| Done::Speculated { samples, heard });
    }

    /// The keypad entry is complete (`#`, the ask's digit count, or the inter-digit timeout).
    fn submit_digits(&mut self) {
        let digits = std::mem::take(&mut self.digits);
        self.last_digit = None;
        self.listening = None;
        self.handle(Event::Dtmf(digits));
    }

    /// What recognition made of the caller's turn.
    fn on_heard(&mut self, heard: Heard) {
        match heard {
            Ok((text, confidence)) if !text.trim().is_empty() => {
                if let Some(t) = self.timing.as_mut() {
                    t.asr_done = Some(Instant::now());
                }
                self.handle(Event::Speech { text, confidence });
            }
            Ok(_) => self.handle(Event::NoInput),
            Err(e) => {
                // Recognition failed or the queue is too long: the keypad still works; say so
                // rather than go silent.
                tracing::warn!("ASR unavailable, offering the keypad: {e}");
                crate::ops::metrics::metrics()
                    .fallbacks_total
                    .inc(&["asr_unavailable"]);
                self.timing = None;
                let (timeout_ms, dtmf_max) = self.last_listen;
                self.apply(vec![
                    Action::Say {
                        text: "Sorry, I couldn't catch that. You can also use your keypad.".into(),
                        barge_in: true,
                    },
                    Action::Listen {
                        timeout_ms,
                        dtmf_max,
                        expect: "keypad".into(),
                    },
                ]);
            }
        }
    }
}

impl Drop for Brain {
    fn drop(&mut self) {
        self.flush_decision(None);
        // Transferred: the caller reached an agent; failed: a transfer was needed but no agent
        // answered; self-served: the bot answered or finished the call without a human;
        // abandoned: none of these (hung up before being helped).
        let outcome = if self.reached_agent {
            "transferred"
        } else if self.transfer_reason.is_some() {
            "failed"
        } else if self.answered || self.dialplan_ended {
            "self_served"
        } else {
            "abandoned"
        };
        crate::ops::metrics::metrics()
            .call_outcomes_total
            .inc(&[outcome]);
        crate::ops::live::ended(&self.call_id);
        if let Some(records) = &self.services.records {
            records.send(crate::ops::records::RecordEvent::CallEnded {
                call_id: self.call_id.clone(),
                ended_ms: crate::ops::live::now_ms(),
                outcome: outcome.into(),
                transfer_reason: self.transfer_reason.clone(),
            });
        }
        // The caller hung up during a transfer: the record says so (the bridge's own drop
        // hangs up the agent's leg).
        if self.bridge.is_some() {
            self.log_transfer("ended", "caller hung up");
        }
    }
}

impl CallBrain for Brain {
    fn start(&mut self, _out: &mut VecDeque<i16>) {
        self.handle(Event::Start);
    }

    fn frame(&mut self, pcm: &[f32], out: &mut VecDeque<i16>) {
        if let Some(bridge) = self.bridge.as_mut() {
            // Transferred: the caller talks to the agent (or hears hold audio), not the bot.
            bridge.caller_frame(pcm);
            return;
        }
        let Some(event) = self.endpointer.feed(pcm) else {
            return;
        };
        match event {
            VadEvent::SpeechStart => {
                if let Some(l) = self.listening.as_mut() {
                    l.deadline = None; // the caller is talking: no no-input
                }
            }
            VadEvent::BargeIn if self.barge_in && !out.is_empty() && self.listening.is_some() => {
                out.clear(); // barge-in: stop the prompt, and the synthesis behind it
                self.stop_synthesis
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            VadEvent::Pause(audio) if self.listening.is_some() && self.busy == 0 => {
                self.speculate(audio)
            }
            VadEvent::Utterance(audio) if self.listening.is_some() && self.busy == 0 => {
                self.recognise(audio, Instant::now())
            }
            // Said while recognition or synthesis is still running (a speculation included):
            // kept (the latest one) and recognised as soon as the call listens again.
            VadEvent::Utterance(audio) => self.pending = Some((audio, Instant::now())),
            _ => {}
        }
    }

    fn digit(&mut self, d: char, out: &mut VecDeque<i16>) {
        if let Some(bridge) = self.bridge.as_mut() {
            bridge.caller_digit(d);
            return;
        }
        let Some(l) = self.listening.as_ref() else {
            return;
        };
        if self.barge_in {
            out.clear();
            self.stop_synthesis
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let max = l.dtmf_max.max(1);
        if d != '#' {
            self.digits.push(d);
        }
        if d == '#' || self.digits.len() >= max {
            self.submit_digits();
        } else {
            self.last_digit = Some(Instant::now());
        }
    }

    fn tick(&mut self, out: &mut VecDeque<i16>) -> Option<String> {
        while let Ok(done) = self.rx.try_recv() {
            match done {
                Done::Clause { pcm, barge_in } => {
                    self.barge_in = barge_in;
                    if self
                        .stop_synthesis
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        continue; // the caller barged in: the rest of this reply is dropped
                    }
                    out.extend(pcm);
                    if let Some(t) = self.timing.take() {
                        self.log_latency(t);
                    }
                }
                Done::Spoken { rest } => {
                    self.busy = self.busy.saturating_sub(1);
                    // Synthesis produced nothing (failed, or cut by barge-in): no latency.
                    self.flush_decision(None);
                    self.apply(rest);
                }
                Done::Heard(heard) => {
                    self.busy = self.busy.saturating_sub(1);
                    self.note_asr_queue();
                    self.on_heard(heard);
                }
                Done::Speculated { samples, heard } => {
                    self.busy = self.busy.saturating_sub(1);
                    if let Some(s) = self.speculation.as_mut()
                        && s.samples == samples
                    {
                        s.heard = Some(heard);
                    }
                }
                Done::Http(r) => {
                    self.busy = self.busy.saturating_sub(1);
                    match r {
                        Ok((status, body)) => self.handle(Event::HttpResponse { status, body }),
                        Err(e) => self.handle(Event::HttpFailed(e)),
                    }
                }
            }
        }
        if self.bridge.is_some() {
            return self.tick_bridge(out);
        }
        if self.busy == 0
            && self.listening.is_some()
            && let Some((audio, endpoint)) = self.pending.take()
        {
            self.recognise(audio, endpoint);
        }
        // Keys typed without `#`: the entry is complete once the caller stops typing.
        if self
            .last_digit
            .is_some_and(|at| at.elapsed() >= INTER_DIGIT_TIMEOUT)
            && self.listening.is_some()
        {
            self.submit_digits();
        }
        if out.is_empty() && self.busy == 0 {
            if let Some(reason) = self.end_after_audio.take() {
                self.dialplan_ended = true;
                return Some(reason);
            }
            let now = Instant::now();
            if let Some(l) = self.listening.as_mut() {
                match l.deadline {
                    // Typing counts as input too: no no-input while an entry is under way.
                    _ if self.last_digit.is_some() => l.deadline = None,
                    None if !self.endpointer.in_speech() => l.deadline = Some(now + l.timeout),
                    Some(at) if now >= at => {
                        self.listening = None;
                        self.handle(Event::NoInput);
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::intent::BagOfWords;
    use crate::speech::fake::{FakeRecognizer, FakeSynthesizer};

    const PLAN: &str = "name: metrics-test\nintents:\n  hello:\n    examples: [hello there, hi, good morning]\nhandlers: { no_input: bye, no_match: bye }\nstart: ask\nnodes:\n  ask:\n    ask: { prompt: \"Say something.\" }\n    next: bye\n  bye: { hangup: \"Bye.\" }\n";

    /// 20 ms frames: a loud tone (voice to the endpointer) or silence.
    fn frames(ms: u32, amplitude: f32) -> Vec<Vec<f32>> {
        let samples: Vec<f32> = (0..ms * 8)
            .map(|i| amplitude * (i as f32 * 0.3).sin())
            .collect();
        samples.chunks(160).map(<[f32]>::to_vec).collect()
    }

    /// A simulated call through the real brain with fake engines: the Prometheus counters and
    /// histograms move by exactly what the call did (deltas, as other tests share the registry).
    #[test]
    fn metrics_move_by_what_a_simulated_call_did() {
        let dir = std::env::temp_dir().join(format!("voxnav-brain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.yaml");
        std::fs::write(&file, PLAN).unwrap();
        let services = Arc::new(Services {
            registry: Arc::new(HotlineRegistry::load(&file, Arc::new(BagOfWords)).unwrap()),
            asr: Arc::new(FakeRecognizer::hearing(&["hello there"])),
            tts: Arc::new(FakeSynthesizer::default()),
            vars: Default::default(),
            prompts: Default::default(),
            agents: Default::default(),
            records: None,
        });
        let m = crate::ops::metrics::metrics();
        // What the call should move, read before and after (the registry is process-wide).
        let counts = || {
            (
                m.turns_total.get(&["dialplan"]),
                m.turns_total.get(&["end"]),
                m.intents_total.get(&["hello"]),
                m.call_outcomes_total.get(&["self_served"]),
                m.turn_latency_seconds.count(&["voice_to_voice"]),
                m.turn_latency_seconds.count(&["asr"]),
                m.speech_queue_wait_seconds.count(&["asr"]),
            )
        };
        let before = counts();
        let mut brain = Brain::new("metrics-call", "<sip:alice@192.0.2.1>", services);
        let mut out = VecDeque::new();
        brain.start(&mut out);
        assert!(
            crate::ops::live::get("metrics-call").is_some(),
            "the call is live"
        );
        // Wait for the prompt to be spoken (synthesis runs on a thread), as the media task would.
        let mut ended = None;
        let step = |brain: &mut Brain, frame: Option<&[f32]>, out: &mut VecDeque<i16>| {
            if let Some(f) = frame {
                brain.frame(f, out);
            }
            out.clear();
            let r = brain.tick(out);
            std::thread::sleep(Duration::from_millis(2));
            r
        };
        for _ in 0..200 {
            step(&mut brain, None, &mut out);
        }
        // The caller talks for 800 ms, then is silent: an utterance, recognised as "hello there".
        let mut talk = frames(800, 0.3);
        talk.extend(frames(2000, 0.0));
        for f in &talk {
            ended = ended.or(step(&mut brain, Some(f), &mut out));
        }
        for _ in 0..500 {
            if ended.is_some() {
                break;
            }
            ended = step(&mut brain, Some(&frames(20, 0.0)[0]), &mut out);
        }
        assert!(ended.is_some(), "the dialplan hung up after the goodbye");
        drop(brain);
        let after = counts();
        assert_eq!(
            after.0 - before.0,
            0,
            "the greeting is not a caller turn; the one caller turn ended the call"
        );
        assert_eq!(after.1 - before.1, 1, "the caller's turn ended the call");
        assert_eq!(after.2 - before.2, 1, "one `hello` recognised");
        assert_eq!(after.3 - before.3, 1, "the call counted as self-served");
        assert_eq!(after.4 - before.4, 1, "one timed turn");
        assert_eq!(after.5 - before.5, 1);
        assert_eq!(after.6 - before.6, 1, "one recognition's queue wait");
        assert!(
            crate::ops::live::get("metrics-call").is_none(),
            "no longer live"
        );
        let text = m.render();
        assert!(
            text.contains("voxnav_intents_total{intent=\"hello\"}"),
            "rendered"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
