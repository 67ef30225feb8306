//! Overflow to a callback (issue 15): a caller waiting for an agent hears their place and the
//! transfer's options ("Press 1 to be called back"), says "please call me back" (Whisper on
//! the waiting caller's words; the key does the same, `call::session`'s unit tests), leaves
//! their number at a
//! `callback` node and hangs up; when Alice becomes available her phone rings first (with the
//! reason and the number in the INVITE), and once she answers voxnav calls the number back at
//! `transfer.callback_uri` and bridges the two; every step is printed and counted.
//!
//! The caller is `voxnav call` from 5551234 (it transcribes the confirmation it hears);
//! Alice's phone is `sip-test/agent_phone.xml`, the caller's phone when called back
//! `customer_phone.xml` (it checks the number, answers, and hangs up after 2 s).

use std::time::Duration;

use voxnav::testkit::{
    admin_request, agent_state, bot_words, free_udp_port, md5_agent_lines, records,
    register_agent_phone, scripted_call_to, serve_desk, sipp_phone, temp_dir, wait_exit,
    wait_for_line,
};

const TOKEN: &str = "callback-token";

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"caller asked for a human\", fallback: call_me, keys: { \"1\": call_me }, \
    options: \"Press 1 to be called back.\" }\n  call_me:\n    callback: { queue: general }\n";

#[test]
fn a_caller_who_leaves_their_number_is_called_back_when_an_agent_is_free() {
    let dir = temp_dir("callback");
    let agents = format!(
        "agents:\n  alice:\n    name: Alice\n    queues: [general]\n{}",
        md5_agent_lines("alice", "alice-pw")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    let customer_port = free_udp_port();
    let config = format!(
        "transfer:\n  queue_wait_s: 60\n  announce_every_s: 30\n  ring_timeout_s: 10\n  \
         callback_uri: \"sip:{{number}}@127.0.0.1:{customer_port}\"\n"
    );
    std::fs::write(dir.join("voxnav.yaml"), config).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let (_server, lines, voxnav) = serve_desk(
        env!("CARGO_BIN_EXE_voxnav"),
        &dir,
        &["--admin-listen", &admin, "--admin-token", TOKEN],
    );
    let phone = |scenario: &str, port: u16| sipp_phone(scenario, 1, port, &voxnav, &dir);
    let alice_port = free_udp_port();
    let mut alice_phone = phone("agent_phone.xml", alice_port);
    let mut customer_phone = phone("customer_phone.xml", customer_port);
    assert!(register_agent_phone(
        &voxnav, &dir, "alice", "alice-pw", alice_port
    ));
    wait_for_line(
        &lines,
        "voxnav: agent alice registered",
        Duration::from_secs(10),
    )
    .expect("registered");

    // Alice is logged out: the caller waits, hears their place and the option 3 s in, asks
    // to be called back once it has been said, leaves their number and hangs up.
    let script = dir.join("caller.yaml");
    // (Then the caller listens: the hold audio goes on while their words are recognised.)
    let words = "turns:\n  - say: \"please call me back\"\n    after_ms: 9000\n  \
                 - hangup: true\n    after_ms: 8000\n";
    std::fs::write(&script, words).unwrap();
    let report = scripted_call_to(
        env!("CARGO_BIN_EXE_voxnav"),
        &format!("sip:ivr@{voxnav}"),
        &script,
        &["--from", "5551234"],
    );
    let heard = bot_words(&report);
    assert!(
        heard.contains("in the queue")
            && ["press 1", "press one"].iter().any(|p| heard.contains(p))
            && heard.contains("to be called back"),
        "the place and the option: {heard}"
    );
    assert!(heard.contains("call you back"), "the confirmation: {heard}");
    let requested = wait_for_line(&lines, "voxnav: callback ", Duration::from_secs(10))
        .expect("the callback is queued");
    let requested = &records(&[requested], "callback")[0];
    assert_eq!(
        (
            &requested["status"],
            &requested["number"],
            &requested["queue"]
        ),
        (&"requested".into(), &"5551234".into(), &"general".into())
    );
    let (_, queues) = admin_request(&admin, TOKEN, "GET", "/api/queues", None);
    assert!(
        queues.contains("\"waiting\":1"),
        "it keeps a place in the line: {queues}"
    );

    // Alice becomes available: her phone rings first, then the caller is called back.
    let body = "{\"state\":\"available\"}";
    let set = admin_request(&admin, TOKEN, "POST", "/api/agents/alice/state", Some(body));
    assert_eq!(set.0, 200);
    let mut steps = Vec::new();
    while !steps.iter().any(|s| s == "ended" || s == "failed") {
        let line = wait_for_line(&lines, "voxnav: callback ", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the callback goes on after {steps:?}"));
        steps.push(
            records(&[line], "callback")[0]["status"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        steps,
        ["ringing_agent", "calling_back", "connected", "ended"],
        "{steps:?}"
    );
    let status = wait_exit(&mut customer_phone.0, Duration::from_secs(10)).expect("called back");
    assert!(
        status.success(),
        "the number was called and answered: {status}"
    );
    let status = wait_exit(&mut alice_phone.0, Duration::from_secs(10)).expect("Alice hangs up");
    assert!(status.success(), "Alice's phone got the reason: {status}");
    // Released before the last step was printed: wrap-up now.
    assert_eq!(agent_state(&admin, TOKEN, "alice"), "wrap_up");
    let (_, metrics) = admin_request(&admin, TOKEN, "GET", "/metrics", None);
    for status in ["requested", "connected"] {
        let line =
            format!("voxnav_queue_callbacks_total{{queue=\"general\",status=\"{status}\"}} 1\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
