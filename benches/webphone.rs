//! The desk's browser phone (issue 15, `net::webphone`): what a WebRTC agent call costs and how
//! fast the agent hears the caller after answering.
//!
//! - CPU per call: 30 s of audio both ways (50 packets a second each way) through the phone's
//!   sans-IO core (ICE consent, SRTP, the rtc pipeline) against an `rtc` browser on an
//!   in-memory wire; only the phone's own calls are timed. The reference, in the same
//!   process: the same 30 s on a SIP agent leg's RTP session (`media::session`, plain RTP),
//!   against a second session as the phone.
//! - Answer to first audio: the real I/O driver (`WebPhones`: tokio, a UDP socket on
//!   loopback) rings a connected browser phone with the caller's audio flowing; the time
//!   from the desk's answer to the first packet of the caller's audio decrypted in the browser.
//!
//! `cargo bench --bench webphone`

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use voxnav::media::session::{RtpSession, SessionConfig};
use voxnav::net::leg::{LegCommand, LegConfig, LegEvent};
use voxnav::net::webphone::wire::Wire;
use voxnav::net::webphone::{Control, WebPhones};
use voxnav::routing::Acd;
use voxnav::sip::sdp::{Direction, Negotiated};

const SPAN: Duration = Duration::from_secs(30);

fn tone(samples: usize) -> Vec<i16> {
    (0..samples).map(|i| ((i % 40) as i16 - 20) * 500).collect()
}

/// The phone's CPU time for `SPAN` of a WebRTC call.
fn webrtc_call() -> Duration {
    let mut wire = Wire::new();
    wire.run(Duration::from_secs(5));
    assert!(wire.phone.is_connected());
    let mut events = wire.ring(Duration::from_secs(20));
    wire.phone.on_control(Control::Answer, wire.now);
    let command = LegCommand::Audio(tone(8 * SPAN.as_millis() as usize));
    wire.phone
        .on_control(Control::Leg { call: 1, command }, wire.now);
    wire.talking = true;
    wire.phone_time = Duration::ZERO;
    wire.run(SPAN);
    let frames = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, LegEvent::Audio(..)))
        .count();
    assert!(frames >= 1400, "{frames} frames from the browser");
    assert!(
        wire.heard.len() >= 1400,
        "{} packets to the browser",
        wire.heard.len()
    );
    wire.phone_time
}

/// The same on a SIP agent leg's RTP session (ours timed, the phone's not).
fn sip_call() -> Duration {
    let (ours, theirs): (SocketAddr, SocketAddr) = (
        "127.0.0.1:40010".parse().unwrap(),
        "127.0.0.1:40012".parse().unwrap(),
    );
    let media = |to: SocketAddr| Negotiated {
        remote: Some(to),
        codec_pt: 0,
        dtmf_pt: None,
        direction: Direction::SendRecv,
        media_index: 0,
        srtp: None,
    };
    let start = Instant::now();
    let mut us = RtpSession::new(
        SessionConfig::placed_call(1, None),
        Some(media(theirs)),
        start,
    );
    let mut phone = RtpSession::new(
        SessionConfig::placed_call(2, None),
        Some(media(ours)),
        start,
    );
    let audio = tone(8 * SPAN.as_millis() as usize);
    us.play(&audio);
    phone.play(&audio);
    let mut spent = Duration::ZERO;
    let (mut now, mut buf, mut frames) = (start, Vec::new(), 0);
    while now < start + SPAN {
        let t = Instant::now();
        us.handle_timeout(now);
        let mut out = Vec::new();
        while let Some(_tx) = us.poll_transmit(&mut buf) {
            out.push(buf.clone());
        }
        spent += t.elapsed();
        for p in out {
            phone.handle_rtp(&p, ours, now);
        }
        phone.handle_timeout(now);
        let mut back = Vec::new();
        while let Some(_tx) = phone.poll_transmit(&mut buf) {
            back.push(buf.clone());
        }
        while phone.poll_event().is_some() {}
        let t = Instant::now();
        for p in back {
            us.handle_rtp(&p, theirs, now);
        }
        while let Some(e) = us.poll_event() {
            if matches!(e, voxnav::media::session::MediaEvent::Audio { .. }) {
                frames += 1;
            }
        }
        spent += t.elapsed();
        now = us
            .poll_timeout()
            .min(phone.poll_timeout())
            .max(now + Duration::from_micros(100));
    }
    assert!(frames >= 1400, "{frames} frames from the SIP phone");
    spent
}

/// Answer to first audio through `WebPhones` on loopback, `rounds` times: milliseconds.
fn answer_to_first_audio(rounds: usize) -> Vec<f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _inside = runtime.enter();
    let source = format!(
        "agents:\n  alice:\n    queues: [general]\n{}",
        voxnav::agents::hash_lines("alice", "voxnav", "pw")
    );
    let book = voxnav::agents::load_str("agents.yaml", &source).unwrap();
    let phones = Arc::new(WebPhones::new(Arc::new(Acd::new(
        &book,
        Duration::from_secs(5),
    ))));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let (mut browser, _, offer) = voxnav::net::webphone::wire::browser_at(local, Instant::now());
    let answer = phones.connect("alice", &offer, local).unwrap();
    let answer = RTCSessionDescription::answer(answer).unwrap();
    browser
        .set_remote_description(Instant::now(), answer)
        .unwrap();
    let mut buf = vec![0u8; 2048];
    // Runs the browser until `done` says so (its audio is counted), at most 10 s.
    let mut pump = |done: &mut dyn FnMut(usize) -> bool| {
        let limit = Instant::now() + Duration::from_secs(10);
        let mut packets = 0;
        while Instant::now() < limit {
            while let Some(m) = browser.poll_write() {
                let _ = socket.send_to(&m.message, m.transport.peer_addr);
            }
            while browser.poll_event().is_some() {}
            while let Some(m) = browser.poll_read() {
                if matches!(m.message, RTCMessage::RtpPacket(..)) {
                    packets += 1;
                }
            }
            if done(packets) {
                return true;
            }
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = browser.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: from,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(&buf[..n]),
                });
            }
            let _ = browser.handle_timeout(Instant::now());
        }
        false
    };
    assert!(
        pump(&mut |_| phones.status("alice") == Some("connected")),
        "the phone connects"
    );
    let mut figures = Vec::new();
    for _ in 0..rounds {
        let config = LegConfig {
            target: "webrtc:alice".into(),
            from_user: "voxnav".into(),
            headers: Vec::new(),
            answer_timeout: Duration::from_secs(20),
            max_queued_frames: Some(5),
            media_timeout: None,
            credentials: None,
        };
        let mut leg = phones.ring("alice", &config);
        // The bridge relays the caller's audio as it comes: 100 ms queued while it rings.
        leg.commands.send(LegCommand::Audio(tone(800))).unwrap();
        assert!(pump(&mut |_| matches!(
            leg.events.try_recv(),
            Ok(LegEvent::Ringing(_))
        )));
        let answered = Instant::now();
        phones.answer("alice").unwrap();
        assert!(
            pump(&mut |packets| packets > 0),
            "the caller's audio arrives"
        );
        figures.push(answered.elapsed().as_secs_f64() * 1000.0);
        leg.commands.send(LegCommand::Hangup).unwrap();
        assert!(pump(&mut |_| matches!(
            leg.events.try_recv(),
            Ok(LegEvent::Ended { .. })
        )));
    }
    figures
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds = 5;
    let webrtc = median((0..rounds).map(|_| webrtc_call().as_secs_f64()).collect());
    let sip = median((0..rounds).map(|_| sip_call().as_secs_f64()).collect());
    let per_s = |t: f64| t / SPAN.as_secs_f64() * 1e6; // microseconds per call-second
    println!("Agent call media, 30 s both ways at 50 packets/s (median of {rounds} rounds)");
    println!(
        "{:<34} {:>14} {:>12} {:>14}",
        "leg", "us/call-s", "% of a core", "calls per core"
    );
    for (name, t) in [
        ("SIP agent leg (plain RTP)", sip),
        ("browser phone (WebRTC, SRTP)", webrtc),
    ] {
        let us = per_s(t);
        println!(
            "{name:<34} {us:>14.1} {:>11.3}% {:>14.0}",
            us / 1e4,
            1e6 / us
        );
    }
    println!("ratio WebRTC / SIP: {:.2}x", webrtc / sip);

    let mut latency = answer_to_first_audio(20);
    latency.sort_by(f64::total_cmp);
    println!(
        "answer on the desk to the caller's first audio in the browser (loopback, 20 calls): \
         median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        median(latency.clone()),
        latency[latency.len() * 9 / 10],
        latency[latency.len() - 1]
    );
}
