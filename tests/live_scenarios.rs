//! Live calls to the demo hotline with `voxnav call` as the caller (espeak-ng speech, not the
//! product's voice, over G.711 RTP) and SIPp as the agent's phone: spoken order number,
//! a knowledge-base question, barge-in, silence, hanging up mid-prompt, a transfer bridged to
//! an agent, a busy agent, and recognition that fails or is too slow. Each test reads the
//! caller's report (`voxnav call --json`) and the server's decision and transfer records.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use voxnav::testkit::{
    KillOnDrop, Server, bot_words, espeak_wav, free_udp_port, records, scripted_call,
    scripted_call_from, temp_dir, wait_for_udp_listener,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

/// One live call at a time: each server runs Whisper and Piper on the machine's cores, and
/// the timing assertions (barge-in, ringing) assume they are not shared with another test.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `voxnav call` against the server with a script; returns its JSON report.
fn call(server: &Server, script: &Path) -> serde_json::Value {
    scripted_call(VOXNAV, server.port, script)
}

fn write_script(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("script.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A SIPp UAS on a free port playing an agent's phone.
fn agent_phone(scenario: &str, dir: &Path) -> (KillOnDrop, u16) {
    let port = free_udp_port();
    let child = Command::new("sipp")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string(), "-rtp_echo"])
        .args(["-m", "1", "-timeout", "120", "-timeout_error", "-nostdin"])
        .args(["-trace_logs", "-sf"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("sip-test")
                .join(scenario),
        )
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp starts");
    assert!(
        wait_for_udp_listener(port, Duration::from_secs(10)),
        "the agent phone listens"
    );
    (KillOnDrop(child), port)
}

#[test]
fn spoken_order_number_knowledge_question_barge_in_silence_and_hang_up_mid_prompt() {
    let _one = serial();
    let dir = temp_dir("scenario-order");
    espeak_wav("I want to track my order please", &dir, "track");
    // Read out one digit at a time, as callers read numbers to a phone line.
    espeak_wav("Four. Seven. Two. One. Nine. Eight.", &dir, "number");
    espeak_wav("what are your opening hours", &dir, "hours");
    // The caller talks over the greeting 2.5 s in (barge-in), reads the order number out,
    // asks a policy question, stays silent until the bot prompts again, and hangs up 600 ms
    // into that prompt.
    let script = write_script(
        &dir,
        "turns:\n  - wav: track.wav\n    at_ms: 2500\n  - wav: number.wav\n  - wav: hours.wav\n  \
         - silence_ms: 3000\n  - hangup: true\n    at_ms: 600\n",
    );
    let server = Server::start(VOXNAV, &[], &[]);
    let report = call(&server, &script);
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let decisions = records(&lines, "decision");

    let turns = report["turns"].as_array().unwrap();
    // Barge-in: the greeting stopped soon after the caller started talking.
    let talked_over = turns[0]["talked_over_ms"]
        .as_u64()
        .expect("the bot was talking");
    assert!(
        talked_over < 700,
        "the bot kept talking {talked_over} ms: {report}"
    );
    let find =
        |pred: &dyn Fn(&serde_json::Value) -> bool| decisions.iter().find(|d| pred(d)).cloned();
    let asked = find(&|d| d["intent"] == "order_status").expect("order status heard");
    assert_eq!(asked["node"], "order_lookup/ask_number", "{asked}");
    // The order lookup's reply (the first backend reply is the caller lookup at the start).
    let status = (decisions.iter())
        .rfind(|d| d["input"] == "(backend reply)")
        .unwrap_or_else(|| panic!("no lookup reply: {decisions:#?}\n{report}"));
    assert!(
        status["say"]
            .as_str()
            .unwrap()
            .contains("Order 472198 is shipped"),
        "{status}"
    );
    let spoken = find(&|d| d["slots"]["order_number"] == "472198").expect("the spoken number");
    assert!(
        !spoken["input"].as_str().unwrap().starts_with("#dtmf"),
        "spoken, not typed: {spoken}"
    );
    let kb = find(&|d| d["kb"] == "service_hours").expect("the knowledge-base answer");
    assert_eq!(kb["decision"], "answer", "{kb}");
    assert!(
        find(&|d| d["input"] == "(silence)").is_some(),
        "no-input reprompt: {decisions:#?}"
    );
    // The caller heard the replies (Whisper on the caller's side).
    let heard = bot_words(&report);
    assert!(heard.contains("order number"), "{heard}");
    assert!(
        heard.contains("every day") || heard.contains("eight in the morning"),
        "{heard}"
    );
    // Hung up mid-prompt: the call ended cleanly on the caller's BYE.
    assert_eq!(report["ended"], "we hung up", "{report}");
    assert!(
        lines.iter().any(|l| l.contains("ended: caller hung up")),
        "{lines:#?}"
    );
    let latencies = report["voice_to_voice_ms"].as_array().unwrap();
    assert!(latencies.len() >= 3, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn talk_to_an_agent_bridges_the_call_to_the_agents_phone() {
    let _one = serial();
    let dir = temp_dir("scenario-transfer");
    espeak_wav("I want to talk to a real person please", &dir, "agent");
    espeak_wav("hello, I have a question about my bill", &dir, "hello");
    let (mut agent, agent_port) = agent_phone("uas_agent.xml", &dir);
    let server = Server::start(
        VOXNAV,
        &["--agent", &format!("sip:agent@127.0.0.1:{agent_port}")],
        &[],
    );
    // A caller the demo order service knows by number: greeted with their order, they ask
    // for a person instead, talk to the agent once connected, and stay on the line until the
    // agent hangs up (8 s after answering).
    let script = write_script(
        &dir,
        "turns:\n  - wav: agent.wav\n  - wav: hello.wav\n    after_ms: 4000\n  - silence_ms: 15000\n",
    );
    let report = scripted_call_from(VOXNAV, server.port, &script, "+15550100");
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    assert_eq!(records(&lines, "call-started")[0]["caller"], "+15550100");
    let greeting = bot_words(&report);
    assert!(
        greeting.contains("i see your order") && greeting.contains("thursday"),
        "{report}"
    );
    let status = agent.0.wait().expect("sipp ends");
    assert!(
        status.success(),
        "the agent's phone got the INVITE with X-Voxnav-Reason and the transcript, answered, and hung up"
    );
    let transfer = records(&lines, "transfer");
    let states: Vec<&str> = transfer
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["dialling", "connected", "ended"], "{transfer:#?}");
    let ended = &transfer[2];
    // Audio relayed both ways for about 8 s (20 ms frames): the echo came back to the caller.
    assert!(ended["frames_to_agent"].as_u64().unwrap() > 200, "{ended}");
    assert!(ended["frames_to_caller"].as_u64().unwrap() > 200, "{ended}");
    assert!(
        transfer[1]["after_ms"].as_u64().unwrap() >= 1400,
        "rang first: {transfer:#?}"
    );
    assert_eq!(report["ended"], "the far end hung up", "{report}");
    assert!(bot_words(&report).contains("connecting"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_or_slow_recognition_offers_the_keypad_and_a_busy_agent_returns_to_the_bot() {
    let _one = serial();
    let dir = temp_dir("scenario-faults");
    espeak_wav("where is my order", &dir, "order");
    let (_busy, agent_port) = agent_phone("uas_busy.xml", &dir);
    // Recognition fails outright: the caller is told to use the keypad, presses 0 for a
    // person, the agent is busy, and the dialplan's fallback takes the caller back.
    let db_path = dir.join("records.db");
    let server = Server::start(
        VOXNAV,
        &[
            "--agent",
            &format!("sip:agent@127.0.0.1:{agent_port}"),
            "--records",
            db_path.to_str().unwrap(),
        ],
        &[("VOXNAV_FAULT_ASR", "fail")],
    );
    let script = write_script(
        &dir,
        "turns:\n  - wav: order.wav\n  - dtmf: \"0\"\n  - hangup: true\n",
    );
    let report = call(&server, &script);
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    assert!(
        bot_words(&report).contains("catch that"),
        "the keypad offer: {report}"
    );
    let transfer = records(&lines, "transfer");
    let decisions = records(&lines, "decision");
    assert!(
        transfer
            .iter()
            .any(|t| t["status"] == "failed" && t["why"].as_str().unwrap().contains("486")),
        "{transfer:#?}\n{decisions:#?}\n{report}"
    );
    let back = decisions
        .iter()
        .find(|d| d["input"] == "(transfer failed)")
        .expect("the fallback turn");
    assert_eq!(back["node"], "more", "{back}");
    assert!(bot_words(&report).contains("no colleague"), "{report}");
    // The call record: a transfer was needed and no agent answered.
    let db = voxnav::ops::records::connect(&db_path).unwrap();
    let mut outcome = None;
    for _ in 0..50 {
        outcome = db
            .query_row("SELECT outcome, transfer_reason FROM calls", [], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                ))
            })
            .ok()
            .filter(|(o, _)| o.is_some());
        if outcome.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (outcome, reason) = outcome.expect("the call's outcome was recorded");
    assert_eq!(outcome.as_deref(), Some("failed"));
    assert!(
        reason.is_some_and(|r| r.contains("human")),
        "the transfer reason"
    );
    drop(server);

    // Recognition too slow (7 s against a 5 s deadline): the same keypad offer, not silence.
    let server = Server::start(VOXNAV, &[], &[("VOXNAV_FAULT_ASR", "slow:7000")]);
    let script = write_script(
        &dir,
        "turns:\n  - wav: order.wav\n  - dtmf: \"1\"\n  - hangup: true\n",
    );
    let report = call(&server, &script);
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    assert!(
        bot_words(&report).contains("catch that"),
        "the keypad offer: {report}"
    );
    let decisions = records(&lines, "decision");
    assert!(
        decisions.iter().any(|d| d["input"] == "#dtmf 1"),
        "{decisions:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn call_records_keep_every_finished_turn_when_the_server_is_killed_mid_call() {
    let _one = serial();
    let dir = temp_dir("scenario-records");
    espeak_wav("I want to track my order please", &dir, "track");
    let db_path = dir.join("records.db");
    let mut server = Server::start(VOXNAV, &["--records", db_path.to_str().unwrap()], &[]);
    // The caller asks about an order, then stays on the line.
    let script = write_script(&dir, "turns:\n  - wav: track.wav\n  - silence_ms: 60000\n");
    let _caller = KillOnDrop(
        Command::new(VOXNAV)
            .args(["call", &format!("sip:ivr@127.0.0.1:{}", server.port)])
            .arg("--script")
            .arg(&script)
            .args(["--no-transcribe"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("voxnav call"),
    );
    // Wait for the caller's turn to be decided, then kill the server outright (SIGKILL).
    let mut call_id = None;
    while let Ok(line) = server.lines.recv_timeout(Duration::from_secs(60)) {
        if let Some(json) = line.strip_prefix("voxnav: decision ") {
            let d: serde_json::Value = serde_json::from_str(json).unwrap();
            if d["intent"] == "order_status" {
                call_id = d["call"].as_str().map(String::from);
                break;
            }
        }
    }
    let call_id = call_id.expect("the caller's turn was decided");
    // The writer commits each record off the call path: kill once the turn is committed (a
    // kill before would lose only that turn, the one in flight).
    let committed = |db: &rusqlite::Connection| {
        db.query_row(
            "SELECT COUNT(*) FROM turns WHERE call_id = ?1",
            [&call_id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
    };
    let probe = voxnav::ops::records::connect(&db_path).expect("the records database");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    // (call start), the caller lookup's reply, the caller's turn.
    while committed(&probe) < 3 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(probe);
    server.process.0.kill().expect("SIGKILL");
    server.process.0.wait().unwrap();

    let db = voxnav::ops::records::connect(&db_path).expect("the database opens after the kill");
    let (caller, ended): (String, Option<i64>) = db
        .query_row(
            "SELECT caller, ended_ms FROM calls WHERE call_id = ?1",
            [&call_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the call's row");
    assert_eq!(caller, "voxnav-caller");
    assert_eq!(ended, None, "killed mid-call: never ended");
    let turns: Vec<(String, String, String)> = db
        .prepare("SELECT input, decision, record FROM turns WHERE call_id = ?1 ORDER BY seq")
        .unwrap()
        .query_map([&call_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(turns.len() >= 3, "{turns:?}");
    assert_eq!(turns[0].0, "(call start)");
    assert_eq!(turns[1].0, "(backend reply)");
    assert!(turns[2].0.to_lowercase().contains("order"), "{turns:?}");
    // The whole decision record is kept, latency included.
    let record: serde_json::Value = serde_json::from_str(&turns[2].2).unwrap();
    assert!(record["latency"]["asr_ms"].as_u64().is_some(), "{record}");
    let _ = std::fs::remove_dir_all(&dir);
}
