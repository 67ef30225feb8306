//! RTP packets, RFC 4733 events, RTCP compound packets and the jitter buffer: parse without
//! panicking; what parses re-serialises to a packet with the same fields; any sequence of
//! pushes and pops keeps the jitter buffer within its window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::media::dtmf::{EventReceiver, TelephoneEvent};
use voxnav::media::jitter::JitterBuffer;
use voxnav::media::rtcp;
use voxnav::media::rtp::RtpPacket;

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
});
