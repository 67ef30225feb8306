//! Any datagram through the whole SIP endpoint (framing, scanning, validation, transactions,
//! dialogs, SDP) and its timers: no panic, no unbounded state.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voxnav::sip::endpoint::{Endpoint, EndpointConfig};

fuzz_target!(|data: &[u8]| {
    let mut ep = Endpoint::new(
        1,
        "127.0.0.1:5060".parse().unwrap(),
        EndpointConfig::default(),
    );
    let src = "127.0.0.1:5070".parse().unwrap();
    let now = Instant::now();
    // The same bytes twice (a retransmission), then every timer to the end.
    for _ in 0..2 {
        let _ = ep.handle_datagram(data, src, now);
    }
    while let Some(event) = ep.poll_event() {
        if let voxnav::sip::endpoint::EndpointEvent::IncomingCall { call_id, .. } = event {
            let _ = ep.answer_call(&call_id, "127.0.0.1:20000".parse().unwrap(), now);
        }
    }
    let _ = ep.handle_timeout(now + Duration::from_secs(40));
    let _ = ep.handle_timeout(now + Duration::from_secs(80));
    assert_eq!(ep.transactions(), 0, "every transaction ends by a timer");
});
