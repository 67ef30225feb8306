//! Overflow to voicemail (issue 15): a caller who waited the longest allowed for an agent of
//! a queue goes to the transfer's `fallback`, a `voicemail` node: the prompt, the tone, and
//! the caller's own words saved for the queue. The caller is `voxnav call` speaking with the
//! product voice; the saved message is transcribed with `voxnav transcribe` and must hold
//! what the caller said.

use std::process::Command;
use std::time::Duration;

use voxnav::testkit::{
    bot_words, md5_agent_lines, records, scripted_call_to, serve_desk, temp_dir, wait_for_line,
    words,
};

const PLAN: &str = "name: desk\nstart: hand\nnodes:\n  hand:\n    transfer: { queue: general, \
    reason: \"caller asked for a human\", fallback: message }\n  message:\n    voicemail: \
    { queue: general, max_s: 30 }\n";

/// Nobody logs in: the caller waits 2 s, then the fallback.
const CONFIG: &str =
    "transfer:\n  queue_wait_s: 2\n  announce_every_s: 0\n  messages_dir: MESSAGES\n";

#[test]
fn a_caller_nobody_answers_leaves_a_message_for_the_queue() {
    let dir = temp_dir("voicemail");
    let messages = dir.join("messages");
    let agents = format!(
        "agents:\n  alice:\n    queues: [general]\n{}",
        md5_agent_lines("alice", "alice-pw")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    std::fs::write(dir.join("desk.yaml"), PLAN).unwrap();
    let config = CONFIG.replace("MESSAGES", &messages.display().to_string());
    std::fs::write(dir.join("voxnav.yaml"), config).unwrap();
    let (_server, lines, voxnav) = serve_desk(env!("CARGO_BIN_EXE_voxnav"), &dir, &[]);

    // The caller speaks once the prompt and the tone are over (2 s of quiet: the hold
    // chime's pauses are shorter), then says nothing until voxnav thanks them and hangs up.
    let script = dir.join("message.yaml");
    std::fs::write(
        &script,
        "turns:\n  - say: \"Please call me back about the refund for my blue jacket.\"\n    \
         quiet_ms: 2000\n",
    )
    .unwrap();
    let report = scripted_call_to(
        env!("CARGO_BIN_EXE_voxnav"),
        &format!("sip:ivr@{voxnav}"),
        &script,
        &[],
    );
    let heard = bot_words(&report);
    assert!(
        heard.contains("after the tone") && heard.contains("call you back"),
        "the prompt, then thanks: {heard}"
    );
    let saved = wait_for_line(&lines, "voxnav: message ", Duration::from_secs(10))
        .expect("the message is saved");
    let message = &records(&[saved], "message")[0];
    assert_eq!(message["queue"], "general");
    let path = message["path"].as_str().unwrap();
    assert!(path.starts_with(&messages.display().to_string()), "{path}");
    let seconds = message["seconds"].as_f64().unwrap();
    assert!(
        (2.0..12.0).contains(&seconds),
        "the caller's words, not the silence after them: {seconds} s"
    );
    let details = std::fs::read_to_string(std::path::Path::new(path).with_extension("json"))
        .expect("the details beside the audio");
    assert!(details.contains("\"queue\":\"general\""), "{details}");

    // What the message holds: the caller's words, through G.711 and back.
    let out = Command::new(env!("CARGO_BIN_EXE_voxnav"))
        .args(["transcribe", path])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("voxnav transcribe");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Whisper on the product voice through G.711 misses a word in ten now and then ("the
    // reefing for my blue jacket"), and once in four runs wrote the whole message three times
    // over (the loop guard did not collapse it; not understood yet): so the check is that the
    // caller's words are there, at most 3 in 10 missing. A message cut or garbled fails it.
    let said = words("Please call me back about the refund for my blue jacket.");
    let heard = words(&text);
    let missing = said.iter().filter(|w| !heard.contains(w)).count();
    assert!(
        missing * 10 <= said.len() * 3,
        "{missing} of {} words missing: {text}",
        said.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
