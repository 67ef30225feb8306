//! The ACD's queues live (issue 15): a caller waiting for an agent hears their place in the
//! queue (transcribed from the caller's own recording); the agent idle longest is rung first,
//! and when their phone rings out the caller keeps their place and the next agent is rung at
//! once; an agent in wrap-up gets no call until it ends; the queue's figures count it all
//! (`/api/queues`, `/metrics`).
//!
//! Two SIPp phones register by digest: Bob's rings and is never picked up
//! (`sip-test/agent_no_answer.xml`), Alice's answers (`agent_phone.xml`). The first caller is
//! `voxnav call` (it records and transcribes what it hears), the second SIPp.

use std::time::{Duration, Instant};

use voxnav::testkit::{
    admin_request, agent_state, bot_words, chromium_dom, element_text, free_udp_port,
    md5_agent_lines, register_agent_phone, scripted_call_to, serve_desk, sipp_phone, sipp_scenario,
    temp_dir, wait_exit, wait_for_line,
};

const TOKEN: &str = "queues-token";

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"caller asked for a human\", fallback: busy }\n  busy:\n    hangup: \"Nobody is free.\"\n";

/// A ring-out after 3 s, the first announcement 3 s into a wait (then every 5 s).
const CONFIG: &str = "transfer:\n  ring_timeout_s: 3\n  announce_every_s: 5\n  queue_wait_s: 60\n";

fn set_state(admin: &str, agent: &str, state: &str) -> u16 {
    let body = format!("{{\"state\":\"{state}\"}}");
    let path = format!("/api/agents/{agent}/state");
    admin_request(admin, TOKEN, "POST", &path, Some(&body)).0
}

/// The `general` queue as `/api/queues` shows it.
fn general(admin: &str) -> serde_json::Value {
    let (_, body) = admin_request(admin, TOKEN, "GET", "/api/queues", None);
    let queues: serde_json::Value = serde_json::from_str(&body).unwrap();
    (queues["queues"].as_array().unwrap().iter())
        .find(|q| q["name"] == "general")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn waiting_callers_hear_their_place_ring_outs_go_to_the_next_agent_and_wrap_up_gets_no_call() {
    let dir = temp_dir("queues");
    // MD5 hashes only: SIPp's digest answer is MD5 (docs/agents.md).
    let mut agents = String::from("agents:\n");
    for (id, name) in [("alice", "Alice"), ("bob", "Bob")] {
        agents += &format!("  {id}:\n    name: {name}\n    queues: [general]\n");
        agents += &md5_agent_lines(id, &format!("{id}-pw"));
    }
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    std::fs::write(dir.join("voxnav.yaml"), CONFIG).unwrap();
    std::fs::write(dir.join("silence.ulaw"), [0xFFu8; 8000]).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let (_server, lines, voxnav) = serve_desk(
        env!("CARGO_BIN_EXE_voxnav"),
        &dir,
        &["--admin-listen", &admin, "--admin-token", TOKEN],
    );

    // The phones: Alice's takes two calls, Bob's rings once and is never picked up.
    let phone =
        |scenario: &str, calls: u32, port: u16| sipp_phone(scenario, calls, port, &voxnav, &dir);
    let (alice_port, bob_port) = (free_udp_port(), free_udp_port());
    let mut alice_phone = phone("agent_phone.xml", 2, alice_port);
    let mut bob_phone = phone("agent_no_answer.xml", 1, bob_port);
    for (agent, port) in [("alice", alice_port), ("bob", bob_port)] {
        let password = format!("{agent}-pw");
        assert!(register_agent_phone(&voxnav, &dir, agent, &password, port));
        let registered = format!("voxnav: agent {agent} registered");
        wait_for_line(&lines, &registered, Duration::from_secs(10)).expect("registered");
    }

    // The first caller finds nobody logged in: it waits, and hears its place.
    let script = dir.join("wait.yaml");
    std::fs::write(&script, "turns:\n  - hangup: true\n    after_ms: 25000\n").unwrap();
    let caller = std::thread::spawn({
        let (uri, script) = (format!("sip:ivr@{voxnav}"), script.clone());
        move || scripted_call_to(env!("CARGO_BIN_EXE_voxnav"), &uri, &script, &[])
    });
    let announced = wait_for_line(&lines, "waits in queue general", Duration::from_secs(20))
        .expect("the waiting caller's place is announced");
    assert!(
        announced.contains("position 1, estimated wait unknown"),
        "no history yet: {announced}"
    );

    // Bob becomes available first, so he is idle longest: his phone rings first. Alice
    // follows while it rings; Bob lets it ring out, is set on a break, and Alice gets the
    // caller at once.
    assert_eq!(set_state(&admin, "bob", "available"), 200);
    wait_for_line(
        &lines,
        "voxnav: agent bob is ringing",
        Duration::from_secs(10),
    )
    .expect("the agent idle longest is rung");
    assert_eq!(set_state(&admin, "alice", "available"), 200);
    let started = Instant::now();
    wait_for_line(
        &lines,
        "voxnav: agent bob is break",
        Duration::from_secs(15),
    )
    .expect("Bob's phone rang out: not ready");
    wait_for_line(
        &lines,
        "voxnav: agent alice is on_call",
        Duration::from_secs(10),
    )
    .expect("the next agent takes the caller");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "ring timeout, then Alice: {:?}",
        started.elapsed()
    );
    let report = caller.join().unwrap();
    let heard = bot_words(&report);
    assert!(
        heard.contains("in the queue")
            && (heard.contains("number 1") || heard.contains("number one")),
        "the caller heard their place: {heard}"
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice is wrap_up",
        Duration::from_secs(10),
    )
    .expect("wrap-up after the call");

    // A second caller while Alice wraps up and Bob is on a break: it waits, Alice's
    // wrap-up is not cut short, and when it ends she takes the call. The estimate now has
    // the first call's handling time behind it.
    let second = std::thread::spawn({
        let (dir, voxnav) = (dir.clone(), voxnav.clone());
        move || {
            sipp_scenario("uac_proxy.xml")
                .args(["-m", "1", "-p", &free_udp_port().to_string()])
                .args(["-mp", &(free_udp_port() & !1).to_string()])
                .args(["-d", "16000"])
                .arg(&voxnav)
                .current_dir(&dir)
                .output()
                .unwrap()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while general(&admin)["waiting"] != 1 {
        assert!(Instant::now() < deadline, "the second caller waits");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent_state(&admin, TOKEN, "alice"), "wrap_up");
    let announced = wait_for_line(&lines, "waits in queue general", Duration::from_secs(10))
        .expect("announced");
    assert!(
        announced.contains("position 1, estimated wait") && !announced.contains("unknown"),
        "{announced}"
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice is ringing",
        Duration::from_secs(15),
    )
    .expect("after her wrap-up, Alice is rung");
    wait_for_line(
        &lines,
        "voxnav: agent alice is on_call",
        Duration::from_secs(10),
    )
    .expect("and answers");
    let called = second.join().unwrap();
    assert!(called.status.success(), "the second call: {called:?}");
    let status = wait_exit(&mut alice_phone.0, Duration::from_secs(20)).expect("Alice's calls end");
    assert!(
        status.success(),
        "Alice's phone saw two clean calls: {status}"
    );
    let status = wait_exit(&mut bob_phone.0, Duration::from_secs(5)).expect("Bob's phone ends");
    assert!(
        status.success(),
        "Bob's phone was cancelled cleanly: {status}"
    );

    // The queue's figures: two callers offered, both answered within the service level,
    // none abandoned; Bob is on a break.
    let q = general(&admin);
    let count = |k: &str| q[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        [
            "offered",
            "answered",
            "answered_in_time",
            "abandoned",
            "timed_out"
        ]
        .map(count),
        [2, 2, 2, 0, 0],
        "{q}"
    );
    assert_eq!(q["agents"]["break"], 1, "{q}");
    let (_, metrics) = admin_request(&admin, TOKEN, "GET", "/metrics", None);
    assert!(
        metrics.contains("voxnav_queue_calls_total{queue=\"general\",event=\"answered\"} 2\n"),
        "{metrics}"
    );
    // The dashboard's queue tile shows the same (headless Chromium).
    let dom = chromium_dom(
        &format!("http://{admin}/dashboard#token={TOKEN}"),
        &dir.join("chromium-profile"),
    );
    let tile = element_text(&dom, "queues").unwrap_or_default();
    assert!(
        tile.contains("general") && tile.contains("100% in 20 s") && tile.contains("1 break"),
        "{tile}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
