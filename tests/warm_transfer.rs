//! Warm transfer live (issue 15): the agent who answers first hears who calls and why, and
//! only then is the caller put through.
//!
//! The agent's phone is a second voxnav whose hotline records every call (a `voicemail`
//! node): it registers as Alice's contact (digest, `sip-test/agent_register.xml`) and
//! answers the transfer. What it records is what the agent heard, in order; Whisper
//! (`voxnav transcribe`) must find the announcement with the transfer's reason, then the
//! caller's own words after it and not before (the caller talks all along).

use std::process::Command;
use std::time::Duration;

use voxnav::testkit::{
    md5_agent_lines, records, register_agent_phone, scripted_call_to, serve_desk, serve_ready,
    temp_dir, wait_for_line, words,
};

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"a question about a broken blender\", fallback: busy }\n  busy:\n    \
    hangup: \"Nobody is free.\"\n";

/// The agent's "phone": a short hello, the tone, then it records until 4 s of silence.
const PHONE_PLAN: &str = "name: phone\nstart: take\nnodes:\n  take:\n    voicemail: \
    { queue: desk, say: \"Hi.\", max_s: 40 }\n";

#[test]
fn the_agent_hears_the_reason_before_the_caller_is_put_through() {
    let exe = env!("CARGO_BIN_EXE_voxnav");
    let dir = temp_dir("warm-transfer");
    let agents = format!(
        "agents:\n  alice:\n    queues: [general]\n{}",
        md5_agent_lines("alice", "alice-pw")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    std::fs::write(
        dir.join("voxnav.yaml"),
        "transfer:\n  warm: true\n  queue_wait_s: 30\n  announce_every_s: 0\n",
    )
    .unwrap();
    let admin = format!("127.0.0.1:{}", voxnav::testkit::free_udp_port());
    let (_server, _lines, voxnav) = serve_desk(
        exe,
        &dir,
        &["--admin-listen", &admin, "--admin-token", "warm"],
    );

    // Alice's phone: the second voxnav, registered as her contact.
    let messages = dir.join("heard");
    std::fs::write(dir.join("phone.yaml"), PHONE_PLAN).unwrap();
    std::fs::write(
        dir.join("phone-config.yaml"),
        format!("transfer:\n  messages_dir: {}\n", messages.display()),
    )
    .unwrap();
    let phone_args: Vec<std::ffi::OsString> = vec![
        "--dialplan".into(),
        dir.join("phone.yaml").into(),
        "--config".into(),
        dir.join("phone-config.yaml").into(),
        "--asr-jobs".into(),
        "1".into(),
    ];
    let (_phone, phone_lines, phone) = serve_ready(exe, &phone_args);
    let phone_port: u16 = phone.rsplit(':').next().unwrap().parse().unwrap();
    assert!(register_agent_phone(
        &voxnav, &dir, "alice", "alice-pw", phone_port
    ));
    let (status, body) = voxnav::testkit::admin_request(
        &admin,
        "warm",
        "POST",
        "/api/agents/alice/state",
        Some("{\"state\":\"available\"}"),
    );
    assert_eq!(status, 200, "{body}");

    // The caller is transferred at once and talks all along, a second between sentences:
    // nothing of it may reach the agent before the announcement has played, and what they
    // say once put through must. (Talking all along also keeps the recording going: the
    // phone stops after 4 s of silence.)
    let script = dir.join("caller.yaml");
    let sentence =
        "  - say: \"Hello, is this the right place for my blender?\"\n    after_ms: 1000\n";
    std::fs::write(&script, format!("turns:\n{}", sentence.repeat(7))).unwrap();
    let report = scripted_call_to(exe, &format!("sip:ivr@{voxnav}"), &script, &[]);
    assert!(report["failure"].is_null(), "{report}");

    let saved = wait_for_line(&phone_lines, "voxnav: message ", Duration::from_secs(20))
        .expect("the agent's phone recorded the call");
    let path = records(&[saved], "message")[0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let out = Command::new(exe)
        .args(["transcribe", &path])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("voxnav transcribe");
    assert!(out.status.success(), "{out:?}");
    let heard = words(&String::from_utf8_lossy(&out.stdout));
    println!("the agent heard: {}", heard.join(" "));
    let at = |word: &str| heard.iter().position(|w| w == word);
    // The announcement (its first words may fall in the phone's own hello) with the reason,
    // then the caller.
    let (Some(reason), Some(through)) = (at("broken"), at("through")) else {
        panic!("the announcement and its reason: {heard:?}");
    };
    let caller = |w: &String| w == "right" || w == "place";
    assert!(
        !heard[..through].iter().any(caller),
        "the caller is not heard before the announcement has played: {heard:?}"
    );
    assert!(
        reason < through && heard[through..].iter().any(caller),
        "the caller's words come after the announcement: {heard:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
