//! RTP packets and RFC 4733 events: parse without panicking; what parses re-serialises to a
//! packet with the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::media::dtmf::{EventReceiver, TelephoneEvent};
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
});
