//! The dialplan on a live call: the media task feeds it 20 ms frames of the caller's audio and
//! keypad digits and plays what it queues; it runs the endpointer, recognition (on the shared
//! ASR pool, off the media task), the engine, synthesis and backend requests. Every turn's
//! decision record is printed as a `voxnav: decision {json}` line.
//!
//! Turn-taking: the no-input timer starts when the prompt has finished playing; caller speech
//! (120 ms, see `vad`) or a keypad press stops a prompt that allows barge-in; digits are
//! collected up to the ask's maximum or `#`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

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

/// Work finished off the media task.
enum Done {
    /// Synthesised audio for the Say actions of a step, and the actions after them.
    Spoken {
        pcm: Vec<i16>,
        barge_in: bool,
        rest: Vec<Action>,
    },
    Heard(Result<(String, f32), String>),
    Http(Result<(u16, String), String>),
}

struct Listening {
    timeout: Duration,
    dtmf_max: usize,
    /// When the no-input timer fires (set once the prompt has played out).
    deadline: Option<Instant>,
}

/// One call's dialplan driver.
pub struct Brain {
    call_id: String,
    services: Arc<Services>,
    engine: CallEngine,
    endpointer: Endpointer,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    listening: Option<Listening>,
    /// Whether the audio now queued may be interrupted.
    barge_in: bool,
    digits: String,
    /// Hang up once the queued audio has played (a goodbye, a transfer notice).
    end_after_audio: Option<String>,
    /// Work in flight (TTS, ASR, HTTP): input waits for it.
    busy: usize,
    /// An utterance that ended while work was in flight.
    pending: Option<Vec<f32>>,
    /// The turn being timed: when the endpoint fired, ASR finished, the engine decided.
    timing: Option<TurnTiming>,
}

/// Per-turn latency marks (printed as `voxnav: latency {json}` when the reply is queued).
#[derive(Debug, Clone, Copy)]
struct TurnTiming {
    endpoint: Instant,
    asr_done: Option<Instant>,
    decided: Option<Instant>,
}

impl Brain {
    pub fn new(call_id: &str, services: Arc<Services>) -> Self {
        let (tx, rx) = channel();
        let engine = CallEngine::new(services.registry.current(), services.vars.clone());
        Self {
            call_id: call_id.to_string(),
            services,
            engine,
            endpointer: Endpointer::new(EndpointerConfig::default()),
            tx,
            rx,
            listening: None,
            barge_in: true,
            digits: String::new(),
            end_after_audio: None,
            busy: 0,
            pending: None,
            timing: None,
        }
    }

    fn log(&self, step: &Step) {
        if let Some(d) = &step.decision {
            let turn = crate::dialplan::sim::BotTurn {
                decision: d.clone(),
                actions: step.actions.clone(),
            };
            let mut json = crate::dialplan::sim::to_json(&turn);
            json["call"] = serde_json::Value::String(self.call_id.clone());
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "voxnav: decision {json}");
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
            self.busy += 1;
            std::thread::spawn(move || {
                let mut pcm = Vec::new();
                for t in texts {
                    if let Some(cached) = services.prompts.get(&t) {
                        pcm.extend_from_slice(&cached);
                        pcm.extend(std::iter::repeat_n(0i16, 8 * 250));
                        continue;
                    }
                    match services.tts.speak_with_stats(&t) {
                        Ok((audio, _)) => {
                            pcm.extend(audio);
                            pcm.extend(std::iter::repeat_n(0i16, 8 * 250)); // a breath between
                        }
                        Err(e) => eprintln!("voxnav: TTS failed: {e}"),
                    }
                }
                let _ = tx.send(Done::Spoken {
                    pcm,
                    barge_in,
                    rest,
                });
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
                    let tx = self.tx.clone();
                    self.busy += 1;
                    std::thread::spawn(move || {
                        let r = crate::net::http::fetch(
                            &method,
                            &url,
                            body.as_deref(),
                            Duration::from_millis(timeout_ms),
                        );
                        let _ = tx.send(Done::Http(r));
                    });
                }
                Action::Transfer { target, reason, .. } => {
                    // Bridging to the agent is not built yet: the decision record carries the
                    // target, reason and transcript; the call ends after the notice plays.
                    self.end_after_audio = Some(format!(
                        "transfer to {target} ({reason}); bridging not built"
                    ));
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
    fn log_latency(&self, t: TurnTiming) {
        let now = Instant::now();
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_millis() as u64;
        let asr = t.asr_done.unwrap_or(t.endpoint);
        let decided = t.decided.unwrap_or(asr);
        let json = serde_json::json!({
            "call": self.call_id,
            "endpoint_silence_ms": EndpointerConfig::default().end_silence_ms,
            "asr_ms": ms(t.endpoint, asr),
            "decide_ms": ms(asr, decided),
            "reply_audio_ms": ms(decided, now),
            "detected_to_audio_ms": ms(t.endpoint, now) + 20,
        });
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "voxnav: latency {json}");
    }

    fn recognise(&mut self, audio: Vec<f32>) {
        self.listening = None;
        self.timing = Some(TurnTiming {
            endpoint: Instant::now(),
            asr_done: None,
            decided: None,
        });
        let (asr, tx) = (self.services.asr.clone(), self.tx.clone());
        self.busy += 1;
        std::thread::spawn(move || {
            let options = RecognizeOptions {
                deadline: Some(Instant::now() + Duration::from_secs(10)),
            };
            let r = asr
                .recognize(&audio, 8000, &options)
                .map(|t| (t.text, t.confidence))
                .map_err(|e| e.to_string());
            let _ = tx.send(Done::Heard(r));
        });
    }
}

impl CallBrain for Brain {
    fn start(&mut self, _out: &mut VecDeque<i16>) {
        self.handle(Event::Start);
    }

    fn frame(&mut self, pcm: &[f32], out: &mut VecDeque<i16>) {
        let Some(event) = self.endpointer.feed(pcm) else {
            return;
        };
        match event {
            VadEvent::SpeechStart => {
                if self.barge_in && !out.is_empty() && self.listening.is_some() {
                    out.clear(); // barge-in: stop the prompt
                }
                if let Some(l) = self.listening.as_mut() {
                    l.deadline = None; // the caller is talking: no no-input
                }
            }
            VadEvent::Utterance(audio) if self.listening.is_some() && self.busy == 0 => {
                self.recognise(audio)
            }
            // Said while recognition or synthesis of the last turn is still running: kept
            // (the latest one) and recognised as soon as the call listens again.
            VadEvent::Utterance(audio) => self.pending = Some(audio),
            _ => {}
        }
    }

    fn digit(&mut self, d: char, out: &mut VecDeque<i16>) {
        let Some(l) = self.listening.as_ref() else {
            return;
        };
        if self.barge_in {
            out.clear();
        }
        let max = l.dtmf_max.max(1);
        if d != '#' {
            self.digits.push(d);
        }
        if d == '#' || self.digits.len() >= max {
            let digits = std::mem::take(&mut self.digits);
            self.listening = None;
            self.handle(Event::Dtmf(digits));
        }
    }

    fn tick(&mut self, out: &mut VecDeque<i16>) -> Option<String> {
        while let Ok(done) = self.rx.try_recv() {
            self.busy = self.busy.saturating_sub(1);
            match done {
                Done::Spoken {
                    pcm,
                    barge_in,
                    rest,
                } => {
                    self.barge_in = barge_in;
                    out.extend(pcm);
                    if let Some(t) = self.timing.take() {
                        self.log_latency(t);
                    }
                    self.apply(rest);
                }
                Done::Heard(Ok((text, confidence))) if !text.trim().is_empty() => {
                    if let Some(t) = self.timing.as_mut() {
                        t.asr_done = Some(Instant::now());
                    }
                    self.handle(Event::Speech { text, confidence });
                }
                Done::Heard(Ok(_)) => self.handle(Event::NoInput),
                Done::Heard(Err(e)) => {
                    // Recognition failed: the keypad still works; say so rather than go silent.
                    eprintln!("voxnav: ASR failed: {e}");
                    self.apply(vec![
                        Action::Say {
                            text: "Sorry, I couldn't hear that. You can also use your keypad."
                                .into(),
                            barge_in: true,
                        },
                        Action::Listen {
                            timeout_ms: 8000,
                            dtmf_max: 10,
                            expect: "keypad".into(),
                        },
                    ]);
                }
                Done::Http(Ok((status, body))) => self.handle(Event::HttpResponse { status, body }),
                Done::Http(Err(e)) => self.handle(Event::HttpFailed(e)),
            }
        }
        if self.busy == 0
            && self.listening.is_some()
            && let Some(audio) = self.pending.take()
        {
            self.recognise(audio);
        }
        if out.is_empty() && self.busy == 0 {
            if let Some(reason) = self.end_after_audio.take() {
                return Some(reason);
            }
            let now = Instant::now();
            if let Some(l) = self.listening.as_mut() {
                match l.deadline {
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
