//! An agent whose phone vanishes mid-call (issue 15, bad input): Alice answers a transferred
//! caller, her phone sends audio for 1.5 s, then nothing and no BYE (unplugged, its network
//! gone: `sip-test/agent_vanishes.xml`). After `transfer.agent_silence_s` voxnav hangs her leg
//! up, sets her not ready, and the caller hears an apology and goes back to the head of the
//! queue; Bob, available next, takes the call. The caller is never left in dead air. The same
//! holds for an agent talking in the desk's browser when the browser dies.

use std::time::Duration;

use voxnav::testkit::{
    Browser, admin_request, agent_state, bot_words, espeak_wav_voice, free_udp_port,
    md5_agent_lines, register_agent_phone, scripted_call_to, serve_desk, sipp_phone, temp_dir,
    wait_exit, wait_for_line,
};

const TOKEN: &str = "agent-lost-token";

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"caller asked for a human\", fallback: busy }\n  busy:\n    hangup: \"Nobody is free.\"\n";

#[test]
fn a_caller_whose_agent_vanishes_goes_back_to_the_head_of_the_queue() {
    let dir = temp_dir("agent-lost");
    let agent = |id: &str, name: &str| {
        let lines = md5_agent_lines(id, &format!("{id}-pw"));
        format!("  {id}:\n    name: {name}\n    queues: [general]\n{lines}")
    };
    let agents = format!(
        "agents:\n{}{}",
        agent("alice", "Alice"),
        agent("bob", "Bob")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    let config = "transfer:\n  queue_wait_s: 60\n  announce_every_s: 0\n  ring_timeout_s: 10\n  \
                  agent_silence_s: 2\n";
    std::fs::write(dir.join("voxnav.yaml"), config).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let (_server, lines, voxnav) = serve_desk(
        env!("CARGO_BIN_EXE_voxnav"),
        &dir,
        &["--admin-listen", &admin, "--admin-token", TOKEN],
    );
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    let mut alice_phone = sipp_phone("agent_vanishes.xml", 1, alice_port, &voxnav, &dir);
    let mut bob_phone = sipp_phone("agent_phone.xml", 1, bob_port, &voxnav, &dir);
    for (agent, port) in [("alice", alice_port), ("bob", bob_port)] {
        let password = format!("{agent}-pw");
        assert!(register_agent_phone(&voxnav, &dir, agent, &password, port));
        let registered = format!("voxnav: agent {agent} registered");
        wait_for_line(&lines, &registered, Duration::from_secs(10)).expect("registered");
    }
    let set_state = |agent: &str, state: &str| {
        let body = format!("{{\"state\":\"{state}\"}}");
        let path = format!("/api/agents/{agent}/state");
        admin_request(&admin, TOKEN, "POST", &path, Some(&body)).0
    };
    assert_eq!(set_state("alice", "available"), 200);

    // The caller stays on the line for 20 s; Alice answers it at once.
    let script = dir.join("caller.yaml");
    std::fs::write(&script, "turns:\n  - hangup: true\n    after_ms: 20000\n").unwrap();
    let caller = std::thread::spawn({
        let (uri, script) = (format!("sip:ivr@{voxnav}"), script.clone());
        move || scripted_call_to(env!("CARGO_BIN_EXE_voxnav"), &uri, &script, &[])
    });
    wait_for_line(
        &lines,
        "voxnav: agent alice is on_call",
        Duration::from_secs(15),
    )
    .expect("Alice answers");
    // Her phone goes silent 1.5 s in; 2 s later voxnav gives her up: not ready first, then
    // the caller's way on.
    wait_for_line(
        &lines,
        "voxnav: agent alice is break",
        Duration::from_secs(10),
    )
    .expect("a vanished phone's agent is not offered calls");
    let lost = wait_for_line(&lines, "phone went silent", Duration::from_secs(5))
        .expect("the silent phone is noticed");
    assert!(
        lost.contains("agent alice's phone") && lost.contains("back at the head of the queue"),
        "{lost}"
    );
    let status = wait_exit(&mut alice_phone.0, Duration::from_secs(10)).expect("hung up");
    assert!(status.success(), "Alice's phone got a BYE: {status}");
    let (_, queues) = admin_request(&admin, TOKEN, "GET", "/api/queues", None);
    assert!(
        queues.contains("\"waiting\":1") && queues.contains("\"agent_lost\":1"),
        "the caller waits again: {queues}"
    );

    // Bob becomes available: the caller is first in line, and he takes the call.
    assert_eq!(set_state("bob", "available"), 200);
    wait_for_line(
        &lines,
        "voxnav: agent bob is on_call",
        Duration::from_secs(10),
    )
    .expect("the next agent takes the caller");
    let report = caller.join().unwrap();
    // The next agent is rung once the caller has heard the apology.
    let heard = bot_words(&report);
    assert!(
        heard.contains("lost the line") && heard.contains("next in line"),
        "the caller heard the apology: {heard}"
    );
    assert!(
        !heard.contains("nobody is free"),
        "not the fallback: {heard}"
    );
    let status = wait_exit(&mut bob_phone.0, Duration::from_secs(10)).expect("Bob's call ends");
    assert!(status.success(), "Bob's phone saw a clean call: {status}");
    assert_eq!(agent_state(&admin, TOKEN, "alice"), "break");
    let (_, queues) = admin_request(&admin, TOKEN, "GET", "/api/queues", None);
    assert!(
        queues.contains("\"offered\":1") && queues.contains("\"answered\":1"),
        "one caller, counted once: {queues}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same with Alice talking in her browser (the desk's WebRTC phone): the browser dies
/// mid-call (the process is killed: no BYE, no DTLS close), its RTP stops, and the caller
/// hears the apology and waits at the head of the line again.
#[test]
fn a_caller_whose_agent_browser_dies_goes_back_to_the_queue() {
    let dir = temp_dir("agent-lost-browser");
    let agents = format!(
        "agents:\n  alice:\n    name: Alice\n    queues: [general]\n{}",
        md5_agent_lines("alice", "alice-pw")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    let config = "transfer:\n  queue_wait_s: 60\n  announce_every_s: 0\n  ring_timeout_s: 20\n  \
                  agent_silence_s: 2\n";
    std::fs::write(dir.join("voxnav.yaml"), config).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let (_server, lines, voxnav) = serve_desk(
        env!("CARGO_BIN_EXE_voxnav"),
        &dir,
        &["--admin-listen", &admin, "--admin-token", TOKEN],
    );
    let voice = espeak_wav_voice(
        "Customer care, how can I help?",
        "en-us",
        48_000,
        &dir,
        "alice",
    );
    let mut page = Browser::open_with_microphone(
        &format!("http://{admin}/agent"),
        &dir.join("browser"),
        &voice,
    );
    page.eval(
        "document.getElementById('agent').value = 'alice'; \
         document.getElementById('password').value = 'alice-pw'; \
         document.getElementById('login-form').requestSubmit(); true",
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice's browser phone is connected",
        Duration::from_secs(20),
    )
    .expect("the browser phone connects");
    page.wait_for(
        "document.querySelector('button[data-state=available]')?.click() || true",
        Duration::from_secs(5),
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice is available",
        Duration::from_secs(10),
    )
    .expect("available");

    let script = dir.join("caller.yaml");
    std::fs::write(&script, "turns:\n  - hangup: true\n    after_ms: 16000\n").unwrap();
    let caller = std::thread::spawn({
        let (uri, script) = (format!("sip:ivr@{voxnav}"), script.clone());
        move || scripted_call_to(env!("CARGO_BIN_EXE_voxnav"), &uri, &script, &[])
    });
    page.wait_for(
        "!document.getElementById('answer').hidden && document.getElementById('answer').click() === undefined",
        Duration::from_secs(15),
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice is on_call",
        Duration::from_secs(10),
    )
    .expect("Alice answers in the browser");
    drop(page); // the browser process is killed
    // In the order printed: her state first, then the warning.
    wait_for_line(
        &lines,
        "voxnav: agent alice is break",
        Duration::from_secs(10),
    )
    .expect("her desk is offered no calls");
    let lost = wait_for_line(&lines, "phone went silent", Duration::from_secs(5))
        .expect("the dead browser is noticed");
    assert!(
        lost.contains("agent alice's phone") && lost.contains("back at the head of the queue"),
        "{lost}"
    );
    let (_, queues) = admin_request(&admin, TOKEN, "GET", "/api/queues", None);
    assert!(
        queues.contains("\"waiting\":1") && queues.contains("\"agent_lost\":1"),
        "the caller waits again: {queues}"
    );
    let report = caller.join().unwrap();
    let heard = bot_words(&report);
    assert!(
        heard.contains("lost the line") && heard.contains("next in line"),
        "the caller heard the apology: {heard}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
