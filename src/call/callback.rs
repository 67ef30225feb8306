//! Callbacks (issue 15): a caller who would rather not wait leaves their number at a
//! `callback` node; the request keeps the caller's place in the queue's line (the ACD's
//! `Router`, like a caller on hold), and when it comes first and an agent of the queue is
//! free, voxnav rings the agent's phone (with the reason, transcript and number), then calls
//! the caller back at `transfer.callback_uri` and relays audio both ways until either hangs
//! up. An agent who lets it ring out is set on a break and the request keeps its place for
//! the next agent.
//!
//! The `Dialer` is one task: requests come from calls over a channel; every 250 ms it asks the
//! ACD for an agent for each pending request (as a waiting call's driver does); each callback
//! runs as its own task. Every step is reported (`voxnav: callback {json}`). Requests live in
//! this node's memory: a restart forgets those not yet placed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::net::leg::{self, LegCommand, LegConfig, LegEvent};
use crate::net::media::MediaEngine;
use crate::net::webphone::{WebPhones, place_agent_leg};
use crate::report::{Report, Reporter};
use crate::routing::{Acd, Leaving};

/// A caller's request to be called back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// `callback-` and the call that asked.
    pub id: String,
    pub queue: String,
    /// Digits, with a leading `+` for an international number.
    pub number: String,
    pub reason: String,
    pub transcript: Vec<String>,
    pub priority: u8,
}

/// Whether `number` can be called back: digits (3 to 20) with an optional leading `+`. Caller
/// ids like `anonymous` cannot, and nothing else may reach the callback URI.
pub fn callable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

/// Where callbacks go: the URI template with `{number}` filled.
pub fn callback_uri(template: &str, number: &str) -> String {
    template.replace("{number}", number)
}

/// How a callback ended, for the dialer.
enum Finished {
    /// The agent did not answer: the request keeps its place for the next agent.
    AgentMissed(String),
    /// Placed (connected, or the caller did not answer: reported either way).
    Done,
}

/// Places callbacks as agents free up.
pub struct Dialer {
    requests: UnboundedReceiver<CallbackRequest>,
    media: Arc<MediaEngine>,
    acd: Arc<Acd>,
    phones: Arc<WebPhones>,
    reporter: Reporter,
    ring_timeout: Duration,
    agent_silence: Option<Duration>,
    uri: String,
}

impl Dialer {
    /// The dialer and the sender calls queue their requests with; `run` it on the runtime.
    pub fn new(
        media: Arc<MediaEngine>,
        acd: Arc<Acd>,
        phones: Arc<WebPhones>,
        reporter: Reporter,
        ring_timeout: Duration,
        agent_silence: Option<Duration>,
        uri: String,
    ) -> (UnboundedSender<CallbackRequest>, Dialer) {
        let (tx, requests) = unbounded_channel();
        let dialer = Dialer {
            requests,
            media,
            acd,
            phones,
            reporter,
            ring_timeout,
            agent_silence,
            uri,
        };
        (tx, dialer)
    }

    fn report(&self, r: &CallbackRequest, status: &'static str, agent: &str, why: &str) {
        report_step(&self.reporter, r, status, agent, why);
    }

    pub async fn run(mut self) {
        let mut pending: Vec<(CallbackRequest, bool)> = Vec::new();
        let (done_tx, mut done) = unbounded_channel::<(String, Finished)>();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(r) = request else { return };
                    self.acd.wait(&r.queue, &r.id, r.priority);
                    self.report(&r, "requested", "", &r.reason);
                    pending.push((r, false));
                }
                Some((id, finished)) = done.recv() => {
                    match finished {
                        Finished::AgentMissed(why) => {
                            if let Some((r, busy)) = pending.iter_mut().find(|(r, _)| r.id == id) {
                                *busy = false;
                                self.report(r, "agent_missed", "", &why);
                            }
                        }
                        Finished::Done => pending.retain(|(r, _)| r.id != id),
                    }
                }
                _ = tick.tick() => {
                    for (r, busy) in pending.iter_mut().filter(|(_, busy)| !*busy) {
                        let Some((agent, contact)) = self.acd.pick(&r.queue, &r.id, r.priority)
                        else {
                            continue;
                        };
                        *busy = true;
                        self.report(r, "ringing_agent", &agent, &contact);
                        tokio::spawn(place(
                            r.clone(),
                            agent,
                            contact,
                            Placing {
                                media: self.media.clone(),
                                acd: self.acd.clone(),
                                phones: self.phones.clone(),
                                reporter: self.reporter.clone(),
                                ring_timeout: self.ring_timeout,
                                agent_silence: self.agent_silence,
                                uri: callback_uri(&self.uri, &r.number),
                            },
                            done_tx.clone(),
                        ));
                    }
                }
            }
        }
    }
}

/// One step of a callback (`voxnav: callback` line, metrics).
fn report_step(
    reporter: &Reporter,
    r: &CallbackRequest,
    status: &'static str,
    agent: &str,
    why: &str,
) {
    reporter.report(Report::Callback {
        id: r.id.clone(),
        queue: r.queue.clone(),
        number: r.number.clone(),
        status,
        agent: agent.to_string(),
        why: why.to_string(),
    });
}

/// What one callback needs.
struct Placing {
    media: Arc<MediaEngine>,
    acd: Arc<Acd>,
    phones: Arc<WebPhones>,
    reporter: Reporter,
    ring_timeout: Duration,
    /// Either phone silent this long once answered: the callback ends (`agent_silence_s`).
    agent_silence: Option<Duration>,
    uri: String,
}

/// Rings the agent, then calls the caller back and relays audio until either hangs up.
async fn place(
    r: CallbackRequest,
    agent: String,
    contact: String,
    p: Placing,
    done: UnboundedSender<(String, Finished)>,
) {
    let report =
        |status: &'static str, why: &str| report_step(&p.reporter, &r, status, &agent, why);
    let mut agent_leg = place_agent_leg(
        &p.media,
        Some(&p.phones),
        LegConfig {
            target: contact,
            from_user: "voxnav".into(),
            headers: vec![
                (
                    "Subject".into(),
                    format!("voxnav callback to {}: {}", r.number, r.reason),
                ),
                ("X-Voxnav-Reason".into(), format!("callback: {}", r.reason)),
                ("X-Voxnav-Transcript".into(), r.transcript.join(" | ")),
                ("X-Voxnav-Callback".into(), r.number.clone()),
            ],
            answer_timeout: p.ring_timeout,
            max_queued_frames: Some(5),
            media_timeout: p.agent_silence,
            credentials: None,
        },
    );
    // The agent first: they hear the reason (the INVITE's headers) before the caller rings.
    loop {
        match agent_leg.events.recv().await {
            Some(LegEvent::Answered) => break,
            Some(LegEvent::Failed { status, reason }) => {
                p.acd.not_answered(&agent, &r.id);
                let why = format!("{status} {reason}");
                let _ = done.send((r.id.clone(), Finished::AgentMissed(why)));
                return;
            }
            Some(LegEvent::Ended { why, .. }) => {
                p.acd.released(&agent, &r.id);
                let _ = done.send((r.id.clone(), Finished::AgentMissed(why)));
                return;
            }
            None => {
                p.acd.released(&agent, &r.id);
                let why = "the agent's leg stopped".to_string();
                let _ = done.send((r.id.clone(), Finished::AgentMissed(why)));
                return;
            }
            Some(_) => {}
        }
    }
    p.acd.answered(&agent, &r.id);
    report("calling_back", &p.uri);
    let mut caller_leg = leg::place(
        &p.media,
        LegConfig {
            target: p.uri.clone(),
            from_user: "voxnav".into(),
            headers: Vec::new(),
            answer_timeout: Duration::from_secs(30),
            max_queued_frames: Some(5),
            media_timeout: p.agent_silence,
            credentials: None,
        },
    );
    let mut connected = false;
    let outcome = loop {
        tokio::select! {
            e = agent_leg.events.recv() => match e {
                Some(LegEvent::Audio(pcm, _)) if connected => {
                    let _ = caller_leg.commands.send(LegCommand::Audio(pcm));
                }
                Some(LegEvent::Ended { why, .. }) | Some(LegEvent::Failed { reason: why, .. }) => {
                    break format!("the agent hung up: {why}");
                }
                Some(LegEvent::MediaStopped) => break "the agent's phone went silent".to_string(),
                None => break "the agent's leg stopped".to_string(),
                Some(_) => {}
            },
            e = caller_leg.events.recv() => match e {
                Some(LegEvent::Answered) => {
                    connected = true;
                    report("connected", "");
                }
                Some(LegEvent::Audio(pcm, _)) => {
                    let _ = agent_leg.commands.send(LegCommand::Audio(pcm));
                }
                Some(LegEvent::Failed { status, reason }) => {
                    break format!("the caller did not answer: {status} {reason}");
                }
                Some(LegEvent::Ended { why, .. }) => break format!("the caller hung up: {why}"),
                Some(LegEvent::MediaStopped) => break "the caller's phone went silent".to_string(),
                None => break "the caller's leg stopped".to_string(),
                Some(_) => {}
            },
        }
    };
    let _ = agent_leg.commands.send(LegCommand::Hangup);
    let _ = caller_leg.commands.send(LegCommand::Hangup);
    p.acd.released(&agent, &r.id);
    p.acd.leave(&r.id, Leaving::Elsewhere);
    report(if connected { "ended" } else { "failed" }, &outcome);
    let _ = done.send((r.id.clone(), Finished::Done));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_numbers_are_called_back() {
        for ok in ["5551234", "+4930123456", "911"] {
            assert!(callable(ok), "{ok}");
        }
        for bad in [
            "anonymous",
            "",
            "12",
            "555;x=1",
            "555@evil",
            "+",
            "1234567890123456789012",
        ] {
            assert!(!callable(bad), "{bad}");
        }
        assert_eq!(
            callback_uri("sip:{number}@gw.example:5060", "5551234"),
            "sip:5551234@gw.example:5060"
        );
    }
}
