//! The calls in progress, as the admin API shows them: when each started, where it is in the
//! dialplan, its transcript so far. One view per server, kept by observing its reports (a
//! short mutex, no I/O), read by the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::report::{Observer, Report, TransferStatus};

/// One call in progress.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveCall {
    pub call_id: String,
    /// Unix time in milliseconds.
    pub started_ms: u64,
    /// The caller's number (`sip::identity`).
    pub caller: String,
    pub hotline: String,
    pub node: String,
    pub turns: u32,
    pub transcript: Vec<String>,
    /// "bot", "transfer ringing", "with agent".
    pub state: String,
    /// The latest intent the router recognised, and every slot value filled so far.
    pub intent: Option<String>,
    pub slots: serde_json::Map<String, serde_json::Value>,
    /// Why the bot transferred the call (None: not transferred).
    pub transfer_reason: Option<String>,
    /// When the transfer began (Unix ms): the caller's wait for an agent.
    pub transfer_ms: Option<u64>,
    /// What the transfer last dialled (`queue:general` while waiting, then the agent's
    /// phone or the seat's SIP URI).
    pub target: Option<String>,
    /// Agent assist: what the caller said to the agent, with the intent and knowledge entry
    /// it matches (`Report::Assist`), oldest first.
    pub assist: Vec<serde_json::Value>,
}

/// The most assist lines a call keeps (the newest).
const ASSIST_KEPT: usize = 50;

impl LiveCall {
    /// A line of the live transcript with the agent (the oldest goes past `ASSIST_KEPT`).
    fn add_assist_line(
        &mut self,
        speaker: &str,
        text: &str,
        intent: Option<&str>,
        suggestion: Option<&crate::report::Suggestion>,
    ) {
        if self.assist.len() >= ASSIST_KEPT {
            self.assist.remove(0);
        }
        self.assist.push(serde_json::json!({
            "at_ms": now_ms(),
            "speaker": speaker,
            "text": text,
            "intent": intent,
            "suggestion": suggestion,
        }));
    }
}

/// Unix time now in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// voxnav's registration to its registrar, as last reported.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveRegistration {
    pub registrar: String,
    /// registering, registered or failed.
    pub state: String,
    /// The registrar's status of the last failure (408: no answer).
    pub status: Option<u16>,
    pub detail: String,
    /// When it changed (Unix ms).
    pub since_ms: u64,
}

/// The calls in progress on one server, and its registration.
#[derive(Debug, Default)]
pub struct LiveView {
    calls: Mutex<BTreeMap<String, LiveCall>>,
    registration: Mutex<Option<LiveRegistration>>,
    /// Each registered agent's contacts.
    agents: Mutex<BTreeMap<String, Vec<String>>>,
}

impl LiveView {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LiveCall>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, call_id: &str, change: impl FnOnce(&mut LiveCall)) {
        if let Some(call) = self.lock().get_mut(call_id) {
            change(call);
        }
    }

    /// Every call in progress, oldest first.
    pub fn all(&self) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self.lock().values().cloned().collect();
        calls.sort_by_key(|c| c.started_ms);
        calls
    }

    /// One call in progress.
    pub fn get(&self, call_id: &str) -> Option<LiveCall> {
        self.lock().get(call_id).cloned()
    }

    /// The contacts each agent's phones have registered (agents with none are absent).
    pub fn agent_contacts(&self) -> BTreeMap<String, Vec<String>> {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The registration's last state (None: not configured, or not reported yet).
    pub fn registration(&self) -> Option<LiveRegistration> {
        self.registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Observer for LiveView {
    fn observe(&self, report: &Report) {
        match report {
            Report::CallStarted {
                call_id,
                caller,
                hotline,
                ..
            } => {
                self.lock().insert(
                    call_id.clone(),
                    LiveCall {
                        call_id: call_id.clone(),
                        started_ms: now_ms(),
                        caller: caller.clone(),
                        hotline: hotline.clone(),
                        state: "bot".into(),
                        ..Default::default()
                    },
                );
            }
            Report::Turn {
                call_id,
                record,
                transcript,
            } => self.update(call_id, |c| {
                c.node = record["node"].as_str().unwrap_or_default().to_string();
                c.turns = record["turn"].as_u64().unwrap_or(0) as u32;
                c.transcript = transcript.clone();
                if let Some(intent) = record["intent"].as_str() {
                    c.intent = Some(intent.to_string());
                }
                if let Some(slots) = record["slots"].as_object() {
                    c.slots.extend(slots.clone());
                }
            }),
            Report::TransferRequested { call_id, reason } => self.update(call_id, |c| {
                c.transfer_reason = Some(reason.clone());
                c.transfer_ms = Some(now_ms());
            }),
            Report::Assist {
                call_id,
                text,
                intent,
                suggestion,
                ..
            } => self.update(call_id, |c| {
                c.add_assist_line("caller", text, intent.as_deref(), suggestion.as_ref())
            }),
            Report::AgentSaid { call_id, text, .. } => {
                self.update(call_id, |c| c.add_assist_line("agent", text, None, None))
            }
            Report::Transfer {
                call_id,
                status,
                agent,
                ..
            } => {
                let state = match status {
                    TransferStatus::Dialling => "transfer ringing",
                    TransferStatus::Connected => "with agent",
                    TransferStatus::Failed | TransferStatus::Ended => "bot",
                };
                self.update(call_id, |c| {
                    c.state = state.into();
                    if *status == TransferStatus::Dialling {
                        c.target = Some(agent.clone());
                    }
                });
            }
            Report::CallEnded { call_id, .. } => {
                self.lock().remove(call_id);
            }
            Report::AgentContacts { agent, contacts } => {
                let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
                if contacts.is_empty() {
                    agents.remove(agent);
                } else {
                    agents.insert(agent.clone(), contacts.clone());
                }
            }
            Report::Registration {
                registrar,
                state,
                status,
                detail,
            } => {
                *self.registration.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(LiveRegistration {
                        registrar: registrar.clone(),
                        state: state.to_string(),
                        status: *status,
                        detail: detail.clone(),
                        since_ms: now_ms(),
                    });
            }
            _ => {}
        }
    }
}

/// This machine's host name (the default node name), `voxnav` if it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "voxnav".into())
}
