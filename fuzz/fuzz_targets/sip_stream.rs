//! TCP stream framing on arbitrary bytes fed in arbitrary pieces: never panics, always makes
//! progress or asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::sip::framing::{StreamFrame, frame_stream};

fuzz_target!(|data: &[u8]| {
    let mut buf = Vec::new();
    for chunk in data.chunks(37) {
        buf.extend_from_slice(chunk);
        loop {
            match frame_stream(&buf) {
                Ok(StreamFrame::Complete(f)) => {
                    assert!(f.consumed() > 0 && f.consumed() <= buf.len());
                    buf.drain(..f.consumed());
                }
                Ok(StreamFrame::Incomplete { keepalive }) => {
                    buf.drain(..keepalive);
                    break;
                }
                Err(_) => return,
            }
        }
    }
});
