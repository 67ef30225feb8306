//! SDP offers: parse, negotiate (plain, and under the SRTP policy with its crypto lines) and
//! answer without panicking; an answer we write parses back, and an SRTP answer carries our
//! key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxnav::media::srtp::MasterKey;
use voxnav::sip::sdp;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = sdp::parse(data) else {
        return;
    };
    let ours = MasterKey {
        key: [1; 16],
        salt: [2; 14],
    };
    let plain = sdp::negotiate(&offer);
    let secure = sdp::negotiate_secure(&offer, sdp::SrtpPolicy::Optional, &mut || {
        Some(ours.clone())
    });
    for agreed in [plain, secure].into_iter().flatten() {
        let answer = sdp::answer(&offer, &agreed, "127.0.0.1:20000".parse().unwrap(), 1);
        let back = sdp::parse(answer.as_bytes());
        assert!(back.is_ok(), "our answer must parse: {answer}");
        if agreed.srtp.is_some() {
            assert!(answer.contains(&ours.to_inline()), "{answer}");
        }
    }
});
