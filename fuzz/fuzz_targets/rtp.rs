//! RTP packets, RFC 4733 events, RTCP compound packets, the jitter buffer and the RTP session:
//! parse without panicking; what parses re-serialises to a packet with the same fields; any
//! sequence of pushes and pops keeps the jitter buffer within its window; the session takes
//! any datagram as RTP and as RTCP from its peer and keeps sending one packet per tick; the
//! SRTP checks refuse (or, for our own sealed packets, accept) any input without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::media::dtmf::{EventReceiver, TelephoneEvent};
use voxnav::media::jitter::JitterBuffer;
use voxnav::media::rtcp;
use voxnav::media::rtp::RtpPacket;
use voxnav::media::session::{RtpSession, SessionConfig};
use voxnav::media::srtp::{Inbound, MasterKey, Outbound};
use voxnav::sip::sdp::{Direction, Negotiated};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let bytes = p.to_bytes();
        let back = RtpPacket::parse(&bytes).expect("our own packet parses");
        assert_eq!(
            (back.sequence, back.timestamp, back.ssrc, back.payload),
            (p.sequence, p.timestamp, p.ssrc, p.payload)
        );
        let mut rx = EventReceiver::default();
        let _ = rx.on_packet(p.timestamp, p.payload);
        let _ = TelephoneEvent::parse(p.payload);
    }
    let _ = rtcp::parse(data);
    // Read the input as sequence numbers: push (high bit clear) or pop (high bit set).
    let mut jb = JitterBuffer::new(3);
    let frame = [0i16; 160];
    for pair in data.chunks_exact(2) {
        let seq = u16::from_be_bytes([pair[0], pair[1]]);
        if seq & 0x8000 == 0 {
            jb.push(seq.wrapping_mul(3), &frame);
        } else {
            let _ = jb.pop();
        }
        assert!(jb.len() <= 130, "the buffer holds at most its window");
    }
    // The whole session: the input as datagrams from the peer, 20 ms apart.
    let peer: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let t0 = std::time::Instant::now();
    let media = Negotiated {
        remote: Some(peer),
        codec_pt: 0,
        dtmf_pt: Some(101),
        direction: Direction::SendRecv,
        media_index: 0,
        srtp: None,
    };
    let config = SessionConfig::answered_call(7, "voxnav@fuzz".into(), peer.ip());
    let mut session = RtpSession::new(config, Some(media), t0);
    let mut buf = Vec::new();
    let mut sent = 0;
    for (i, chunk) in data.chunks(64).enumerate() {
        let now = t0 + std::time::Duration::from_millis(20 * i as u64);
        session.handle_rtp(chunk, peer, now);
        session.handle_rtcp(chunk, peer, now);
        session.handle_timeout(now);
        while session.poll_transmit(&mut buf).is_some() {
            sent += 1;
        }
        while session.poll_event().is_some() {}
    }
    assert!(
        sent >= data.chunks(64).count(),
        "a packet every tick whatever came in"
    );
    // SRTP: arbitrary bytes are refused (a forged tag cannot match), and the input sealed by
    // us comes back unchanged.
    let key = MasterKey {
        key: [7; 16],
        salt: [9; 14],
    };
    let mut inbound = Inbound::new(&key);
    assert!(
        inbound.unprotect_rtp(data).is_err(),
        "a forged 80-bit tag matched"
    );
    let _ = inbound.unprotect_rtcp(data);
    if let Ok(p) = RtpPacket::parse(data) {
        let mut sealed = p.to_bytes();
        let plain = sealed.clone();
        if Outbound::new(&key).protect_rtp(&mut sealed).is_ok() {
            let opened = Inbound::new(&key).unprotect_rtp(&sealed);
            assert_eq!(opened.as_deref(), Ok(&plain[..]));
        }
    }
});
