//! SDP offers: parse, negotiate and answer without panicking; an answer we write parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::sip::sdp;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = sdp::parse(data)
        && let Ok(agreed) = sdp::negotiate(&offer)
    {
        let answer = sdp::answer(&offer, &agreed, "127.0.0.1:20000".parse().unwrap(), 1);
        assert!(
            sdp::parse(answer.as_bytes()).is_ok(),
            "our answer must parse: {answer}"
        );
    }
});
