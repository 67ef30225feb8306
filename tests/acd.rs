//! The ACD's first part (issue 15): a transfer to a queue of the agents file rings the phone
//! its available agent registered, and the agent's state follows the call. A SIPp phone
//! registers as Alice (`sip-test/agent_register.xml`, digest) and takes the call
//! (`agent_phone.xml`, which checks the transfer reason arrives); a SIPp caller reaches a
//! hotline whose first node transfers to `queue:general` while Alice is logged out, waits
//! with the hold audio, and is put through as soon as she is available. After the call her
//! phone dials feature codes (`voxnav call` answering the digest challenge) to change state.

use std::process::Command;
use std::time::{Duration, Instant};

use voxnav::testkit::{
    admin_request, agent_state, bot_words, free_udp_port, md5_agent_lines, register_agent_phone,
    scripted_call_as, serve_ready, sipp_phone, sipp_scenario, temp_dir, wait_exit, wait_for_line,
};

const TOKEN: &str = "acd-token";

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"caller asked for a human\", fallback: busy }\n  busy:\n    hangup: \"Nobody is free.\"\n";

fn api(admin: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    admin_request(admin, TOKEN, method, path, body)
}

/// Alice's state as the API shows it.
fn state_of_alice(admin: &str) -> String {
    agent_state(admin, TOKEN, "alice")
}

fn wait_state(admin: &str, want: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if state_of_alice(admin) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn sipp(scenario: &str) -> Command {
    let mut c = sipp_scenario(scenario);
    c.args(["-m", "1"]);
    c
}

#[test]
fn a_transfer_to_a_queue_rings_its_available_agents_registered_phone() {
    let dir = temp_dir("acd");
    // MD5 hashes only: SIPp's digest answer is MD5 (docs/agents.md).
    let hashes = md5_agent_lines("alice", "alice-pw");
    let agents = dir.join("agents.yaml");
    std::fs::write(
        &agents,
        format!("agents:\n  alice:\n    name: Alice\n    queues: [general]\n{hashes}"),
    )
    .unwrap();
    let plan = dir.join("desk.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    std::fs::write(dir.join("silence.ulaw"), [0xFFu8; 8000]).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let admin_args = [
        "--admin-listen",
        &admin,
        "--admin-token",
        TOKEN,
        "--asr-jobs",
        "1",
    ];
    let mut args: Vec<std::ffi::OsString> = vec!["--dialplan".into(), plan.clone().into()];
    args.extend(["--agents".into(), agents.clone().into()]);
    args.extend(admin_args.iter().map(Into::into));
    let (_server, lines, voxnav) = serve_ready(env!("CARGO_BIN_EXE_voxnav"), &args);

    // Alice's phone waits for calls; she registers it.
    let phone_port = free_udp_port();
    let mut phone = sipp_phone("agent_phone.xml", 1, phone_port, &voxnav, &dir);
    assert!(register_agent_phone(
        &voxnav, &dir, "alice", "alice-pw", phone_port
    ));
    wait_for_line(
        &lines,
        "voxnav: agent alice registered",
        Duration::from_secs(10),
    )
    .expect("the registration is taken");

    // Logged out at start; nonsense changes are refused.
    assert_eq!(state_of_alice(&admin), "logged_out");
    let set = |state: &str| {
        let body = format!("{{\"state\":\"{state}\"}}");
        api(&admin, "POST", "/api/agents/alice/state", Some(&body)).0
    };
    assert_eq!(set("asleep"), 400);
    let unknown = api(
        &admin,
        "POST",
        "/api/agents/nobody/state",
        Some("{\"state\":\"available\"}"),
    );
    assert_eq!(unknown.0, 404);

    // A caller: the hotline transfers to queue general, where nobody is free yet, so the
    // caller waits with the hold audio...
    let caller = std::thread::spawn({
        let (dir, voxnav) = (dir.clone(), voxnav.clone());
        move || {
            sipp("uac_proxy.xml")
                .args(["-p", &free_udp_port().to_string()])
                .args(["-mp", &(free_udp_port() & !1).to_string()])
                .args(["-d", "8000"])
                .arg(&voxnav)
                .current_dir(&dir)
                .output()
                .unwrap()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, calls) = api(&admin, "GET", "/api/calls", None);
        if calls.contains("transfer ringing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller waits for an agent: {calls}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // ...until Alice says she is available: her phone rings at once.
    assert_eq!(set("available"), 200);
    wait_for_line(
        &lines,
        "voxnav: agent alice is available",
        Duration::from_secs(5),
    )
    .expect("the change is printed");
    assert!(
        wait_state(&admin, "on_call", Duration::from_secs(20)),
        "Alice takes the call: {}",
        state_of_alice(&admin)
    );
    // On a call, her state follows the call.
    assert_eq!(set("break"), 409);
    let called = caller.join().unwrap();
    assert!(called.status.success(), "the caller's call: {called:?}");
    // The caller hung up: voxnav hangs up Alice's leg; she wraps up.
    let status = wait_exit(&mut phone.0, Duration::from_secs(20)).expect("the phone's call ends");
    assert!(
        status.success(),
        "the agent phone saw the reason and a clean end: {status}"
    );
    assert!(
        wait_state(&admin, "wrap_up", Duration::from_secs(10)),
        "wrap-up after the call: {}",
        state_of_alice(&admin)
    );

    // Feature codes from her phone (digest-challenged INVITEs): *2 takes a break, *1 makes
    // her available again; she hears each change said, and each is recorded like the desk's.
    // A wrong password changes nothing.
    let script = dir.join("listen.yaml");
    std::fs::write(
        &script,
        "turns:
  - silence_ms: 200
",
    )
    .unwrap();
    let dial = |code: &str, password: &str| {
        scripted_call_as(
            env!("CARGO_BIN_EXE_voxnav"),
            &format!("sip:{code}@{voxnav}"),
            &script,
            &[],
            Some(("alice", password)),
        )
    };
    let report = dial("*2", "alice-pw");
    assert_eq!(report["failure"], serde_json::Value::Null, "{report}");
    wait_for_line(
        &lines,
        "voxnav: agent alice is break",
        Duration::from_secs(5),
    )
    .expect("the change is printed");
    assert_eq!(state_of_alice(&admin), "break");
    let heard = bot_words(&report);
    assert!(heard.contains("break"), "what Alice heard: {heard}");
    // (`voxnav call` exits with an error for a call not answered, so not `dial`.)
    let refused = Command::new(env!("CARGO_BIN_EXE_voxnav"))
        .args([
            "call",
            &format!("sip:*1@{voxnav}"),
            "--json",
            "--no-transcribe",
        ])
        .args(["--auth-user", "alice", "--from", "alice", "--script"])
        .arg(&script)
        .env("VOXNAV_CALL_PASSWORD", "guess")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && stdout.contains(r#""failure":"401 Unauthorized""#),
        "{stdout}"
    );
    wait_for_line(
        &lines,
        "voxnav: INVITE as \"alice\" from",
        Duration::from_secs(5),
    )
    .expect("the refusal is printed");
    assert_eq!(state_of_alice(&admin), "break");
    let report = dial("*1", "alice-pw");
    assert!(bot_words(&report).contains("available"), "{report}");
    assert_eq!(state_of_alice(&admin), "available");
    let _ = std::fs::remove_dir_all(&dir);
}
