//! Transfer to a human seat as a bridge: voxnav calls the agent (`net::leg`), plays hold audio
//! to the caller while the agent's phone rings, then relays audio both ways for the rest of the
//! call. The reason and the transcript travel in the INVITE (`X-Voxnav-Reason`,
//! `X-Voxnav-Transcript`, `X-Voxnav-Call`) and in the call's decision records. Busy, no answer
//! or an unreachable seat come back as a failure the dialplan handles (its `fallback`).
//!
//! `AgentDirectory` is the seam for agent queues: today a queue name maps to one SIP URI (or a
//! default seat); a skills-based queue picks the URI there instead.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::net::leg::{self, Leg, LegCommand, LegConfig, LegEvent};

/// Where a dialplan's transfer targets (`queue:billing`, or a `sip:` URI) are dialled.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory {
    /// Queue name -> the seat's SIP URI.
    pub queues: BTreeMap<String, String>,
    /// The seat for queues not listed.
    pub default: Option<String>,
    /// How long an agent's phone may ring before the caller goes back to the dialplan.
    pub ring_timeout: Duration,
}

impl AgentDirectory {
    /// The SIP URI to call for a transfer target, if any seat is configured for it.
    pub fn resolve(&self, target: &str) -> Option<String> {
        if target.starts_with("sip:") {
            return Some(target.to_string());
        }
        let queue = target.strip_prefix("queue:").unwrap_or(target);
        self.queues.get(queue).or(self.default.as_ref()).cloned()
    }
}

/// Where the bridge is.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeStatus {
    Ringing,
    Connected,
    /// Never connected: busy, no answer, unreachable.
    Failed(String),
    /// Connected, and now over (the agent hung up).
    Ended(String),
}

/// The agent leg of one caller's call.
pub struct AgentBridge {
    leg: Leg,
    pub uri: String,
    status: BridgeStatus,
    hold: HoldAudio,
    started: Instant,
    /// Caller audio relayed to the agent and agent audio relayed to the caller (20 ms frames).
    pub to_agent: u64,
    pub to_caller: u64,
}

/// Caller-side audio kept queued at most (agent audio is dropped beyond it, oldest first):
/// the relay adds no more delay than this.
const MAX_RELAY_QUEUE: usize = 8 * 200;

impl AgentBridge {
    /// Calls `uri` (on the current tokio runtime) with the reason and transcript attached.
    pub fn dial(
        uri: &str,
        reason: &str,
        transcript: &[String],
        caller_call_id: &str,
        ring_timeout: Duration,
    ) -> Self {
        let config = LegConfig {
            target: uri.to_string(),
            from_user: "voxnav".into(),
            headers: vec![
                ("Subject".into(), format!("voxnav transfer: {reason}")),
                ("X-Voxnav-Reason".into(), reason.to_string()),
                ("X-Voxnav-Transcript".into(), transcript.join(" | ")),
                ("X-Voxnav-Call".into(), caller_call_id.to_string()),
            ],
            answer_timeout: ring_timeout,
            // Agent audio is played as it comes; caller audio to the agent is kept short.
            max_queued_frames: Some(5),
        };
        Self {
            leg: leg::place(config),
            uri: uri.to_string(),
            status: BridgeStatus::Ringing,
            hold: HoldAudio::default(),
            started: Instant::now(),
            to_agent: 0,
            to_caller: 0,
        }
    }

    pub fn status(&self) -> &BridgeStatus {
        &self.status
    }

    /// How long since dialling started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// 20 ms of the caller's audio: to the agent once connected.
    pub fn caller_frame(&mut self, pcm: &[f32]) {
        if self.status == BridgeStatus::Connected {
            let frame: Vec<i16> = pcm
                .iter()
                .map(|&s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16)
                .collect();
            if self.leg.commands.send(LegCommand::Audio(frame)).is_ok() {
                self.to_agent += 1;
            }
        }
    }

    /// A keypad digit from the caller: to the agent (RFC 4733) once connected.
    pub fn caller_digit(&mut self, digit: char) {
        if self.status == BridgeStatus::Connected {
            let _ = self.leg.commands.send(LegCommand::Digit(digit));
        }
    }

    /// Every 20 ms: leg events in, hold audio or the agent's audio out. Returns the status when
    /// it changed.
    pub fn tick(&mut self, out: &mut VecDeque<i16>) -> Option<BridgeStatus> {
        let before = self.status.clone();
        while let Ok(event) = self.leg.events.try_recv() {
            match event {
                LegEvent::Ringing(_) => {}
                LegEvent::Answered => {
                    out.clear(); // stop the hold audio
                    self.status = BridgeStatus::Connected;
                }
                LegEvent::Audio(pcm, _) if self.status == BridgeStatus::Connected => {
                    out.extend(pcm);
                    self.to_caller += 1;
                    let excess = out.len().saturating_sub(MAX_RELAY_QUEUE);
                    out.drain(..excess);
                }
                LegEvent::Audio(..) | LegEvent::Drained(_) => {}
                LegEvent::Failed { status, reason } => {
                    if self.status == BridgeStatus::Ringing {
                        self.status = BridgeStatus::Failed(format!("{status} {reason}"));
                    }
                }
                LegEvent::Ended { why, .. } => {
                    self.status = match &self.status {
                        BridgeStatus::Ringing => BridgeStatus::Failed(why),
                        BridgeStatus::Connected => BridgeStatus::Ended(why),
                        other => other.clone(),
                    };
                }
            }
        }
        if self.status == BridgeStatus::Ringing && out.len() < 8 * 100 {
            self.hold.fill(out);
        }
        (self.status != before).then(|| self.status.clone())
    }
}

impl Drop for AgentBridge {
    fn drop(&mut self) {
        // The caller hung up (or the call ended): take the agent leg down too.
        let _ = self.leg.commands.send(LegCommand::Hangup);
    }
}

/// A gentle repeating chime for callers waiting for an agent (three soft notes, a pause):
/// callers hear that the line is alive without mistaking it for a ringback or a prompt.
#[derive(Default)]
struct HoldAudio {
    position: usize,
}

impl HoldAudio {
    const NOTES: [f32; 3] = [523.25, 659.25, 783.99]; // C5 E5 G5
    const NOTE: usize = 8 * 250;
    const PAUSE: usize = 8 * 1250;

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

    /// Appends 200 ms of hold audio.
    fn fill(&mut self, out: &mut VecDeque<i16>) {
        for _ in 0..8 * 200 {
            out.push_back(self.sample(self.position));
            self.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_resolve_to_seats_with_a_default() {
        let mut d = AgentDirectory::default();
        assert_eq!(d.resolve("queue:billing"), None, "no seat configured");
        assert_eq!(d.resolve("sip:a@h").as_deref(), Some("sip:a@h"));
        d.default = Some("sip:desk@192.0.2.1".into());
        d.queues
            .insert("billing".into(), "sip:billing@192.0.2.2".into());
        assert_eq!(
            d.resolve("queue:billing").as_deref(),
            Some("sip:billing@192.0.2.2")
        );
        assert_eq!(
            d.resolve("queue:general").as_deref(),
            Some("sip:desk@192.0.2.1")
        );
    }

    #[test]
    fn hold_audio_is_soft_and_has_pauses() {
        let mut h = HoldAudio::default();
        let mut out = VecDeque::new();
        for _ in 0..10 {
            h.fill(&mut out);
        }
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 1000 && peak < 5000, "{peak}");
        let silent = out.iter().filter(|&&s| s == 0).count();
        assert!(silent > 8 * 1000, "a pause in every cycle: {silent}");
    }
}
