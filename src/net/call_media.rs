//! The media of an answered call: its RTP/RTCP port pair, its `RtpSession` on the media
//! driver, and where the session's events go: to the call's task (the dialplan), or to the
//! built-in test behaviour that answers when no dialplan is configured (three beeps, every
//! DTMF digit echoed as its tone pair, `#` hangs up).
//!
//! Digits arrive as RFC 4733 events (the negotiated payload type), as SIP INFO (forwarded by
//! the SIP loop) or in-band (Goertzel) for trunks that send tones in audio. The safety rules
//! (latching, strict source) and the RTCP schedule live in the session (`media::session`).

use std::net::SocketAddr;

use tokio::sync::mpsc::UnboundedSender;

use super::media::MediaSink;
use crate::media::session::{MediaCounters, MediaEvent, RtpSession};

/// What a call's media reports to the SIP loop.
#[derive(Debug)]
pub enum MediaReport {
    /// End the call with a BYE (the caller pressed #, RTP stopped, the dialplan hung up).
    Hangup { call_id: String, why: String },
    /// Ask the call's peer (a PBX) to transfer the caller to `target` (SIP REFER).
    Refer { call_id: String, target: String },
    /// The media ended: its counters, and the RTP port it held (back to the pool).
    Finished {
        call_id: String,
        port: u16,
        counters: MediaCounters,
    },
}

/// Tells the SIP loop a call's media has finished (every sink does, once).
pub struct Finish {
    pub call_id: String,
    pub port: u16,
    pub reports: UnboundedSender<MediaReport>,
}

impl Finish {
    pub fn send(self, counters: MediaCounters) {
        let _ = self.reports.send(MediaReport::Finished {
            call_id: self.call_id,
            port: self.port,
            counters,
        });
    }
}

/// Forwards the session's events to the call's task.
pub struct ToCall {
    pub events: UnboundedSender<MediaEvent>,
    pub finish: Finish,
}

impl MediaSink for ToCall {
    fn on_event(&mut self, event: MediaEvent, _session: &mut RtpSession) {
        let _ = self.events.send(event);
    }

    fn finished(self: Box<Self>, counters: MediaCounters) {
        // Dropping `events` tells the call's task the media ended.
        self.finish.send(counters);
    }
}

/// The built-in test behaviour, run on the media thread itself.
pub struct TestBehaviour {
    pub finish: Finish,
}

impl TestBehaviour {
    /// The prompt a call hears first: three beeps.
    pub fn prompt() -> Vec<i16> {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.extend(tone(&[440.0], 200, 0.3));
            out.extend(vec![0; 8 * 150]);
        }
        out
    }

    fn hang_up(&self, why: &str) {
        let _ = self.finish.reports.send(MediaReport::Hangup {
            call_id: self.finish.call_id.clone(),
            why: why.into(),
        });
    }
}

impl MediaSink for TestBehaviour {
    fn on_event(&mut self, event: MediaEvent, session: &mut RtpSession) {
        match event {
            MediaEvent::Digit('#') => self.hang_up("caller pressed #"),
            MediaEvent::Digit(d) => session.play(&dtmf_tone(d)),
            MediaEvent::Inactive => self.hang_up("no RTP for 60 s"),
            MediaEvent::Audio { .. } | MediaEvent::PlayedOut { .. } => {}
        }
    }

    fn finished(self: Box<Self>, counters: MediaCounters) {
        self.finish.send(counters);
    }
}

fn tone(freqs: &[f32], ms: usize, amplitude: f32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v: f32 = freqs
                .iter()
                .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                .sum();
            (v * amplitude * 32767.0) as i16
        })
        .collect()
}

/// The tone pair of a keypad digit (ITU-T Q.23).
fn dtmf_tone(digit: char) -> Vec<i16> {
    let keys = ["123A", "456B", "789C", "*0#D"];
    let Some((r, c)) = keys
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.find(digit).map(|c| (r, c)))
    else {
        return Vec::new();
    };
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let mut out = tone(&[rows[r], cols[c]], 120, 0.25);
    out.extend(vec![0; 8 * 80]);
    out
}

/// The local address to put in SDP for a peer at `peer`: the source address the kernel picks
/// to reach it (a connected UDP socket's local address), or `fallback`.
pub fn local_ip_towards(peer: SocketAddr, fallback: std::net::IpAddr) -> std::net::IpAddr {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(peer).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(fallback)
}
