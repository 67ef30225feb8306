//! Agent assist latency (issue 15): from the end of the caller's voice to the knowledge entry
//! ready for the agent's desk, on a live server.
//!
//! A SIPp phone registers as Alice (digest) and answers; each caller (`voxnav call`, the
//! product voice through G.711) asks the demo hotline for a person, is put through to Alice,
//! then asks five policy questions, three seconds apart. Every question the caller asks the
//! agent is recognised and looked up (`Report::Assist`): its `latency_ms` runs from the end of
//! the caller's voice (the turn detector's end of turn, dated back by the silence it waited)
//! through the recognition queue, Whisper and routing to the report the desk reads. The desk
//! long-polls: the report wakes its held request, so the screen follows within a round trip.
//!
//! The reference, in the same process: Whisper alone (the server's settings for the demo
//! hotline: base, beam 5, one thread) on the same questions spoken by the same voice through
//! G.711, one at a time on an idle machine. The ratio is the price of the live path (the end
//! of turn wait, the queue, routing) over recognition itself.
//!
//! `cargo bench --bench assist` (about 3 minutes). `VOXNAV_BENCH_CALLS=N` sets the callers
//! (one after the other; 3 by default).

use std::time::{Duration, Instant};

use voxnav::speech::{PiperConfig, RecognizeOptions, Recognizer, WhisperConfig, WhisperRecognizer};
use voxnav::testkit::{
    admin_request, installed_models, md5_agent_lines, median, percentile, records,
    register_agent_phone, scripted_call_to, serve_ready, sipp_phone, telephone, temp_dir,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");
const TOKEN: &str = "assist-bench";

/// The caller's questions to the agent, and the knowledge entry each should bring up.
const QUESTIONS: [(&str, &str); 5] = [
    ("how long is the guarantee on a laptop", "warranty"),
    ("which cards can I pay with", "payment_methods"),
    ("do I have to pay for delivery", "shipping_fee"),
    ("until what time can I call you", "service_hours"),
    ("what do members get", "membership"),
];

fn main() {
    let calls: usize = std::env::var("VOXNAV_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = temp_dir("assist-bench");
    std::fs::write(
        dir.join("agents.yaml"),
        format!(
            "agents:\n  alice:\n    name: Alice\n    queues: [general]\n{}",
            md5_agent_lines("alice", "alice-pw")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("voxnav.yaml"),
        "transfer:\n  queue_wait_s: 60\n  announce_every_s: 0\n  ring_timeout_s: 10\n",
    )
    .unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans/hotline.yaml");
    let admin = format!("127.0.0.1:{}", voxnav::testkit::free_udp_port());
    let args: Vec<std::ffi::OsString> = vec![
        "--dialplan".into(),
        demo.into(),
        "--agents".into(),
        dir.join("agents.yaml").into(),
        "--config".into(),
        dir.join("voxnav.yaml").into(),
        "--admin-listen".into(),
        admin.clone().into(),
        "--admin-token".into(),
        TOKEN.into(),
    ];
    let (_server, lines, voxnav) = serve_ready(VOXNAV, &args);
    let phone_port = voxnav::testkit::free_udp_port();
    assert!(register_agent_phone(
        &voxnav, &dir, "alice", "alice-pw", phone_port
    ));
    let (status, body) = admin_request(
        &admin,
        TOKEN,
        "POST",
        "/api/agents/alice/state",
        Some("{\"state\":\"available\"}"),
    );
    assert_eq!(status, 200, "{body}");

    let mut script = String::from("turns:\n  - say: \"just put me through to a real person\"\n");
    for (i, (question, _)) in QUESTIONS.iter().enumerate() {
        // The first waits for the transfer to connect (the bot's words, half a second of
        // ringing); the others leave three seconds after the question before.
        let after = if i == 0 { 8000 } else { 3000 };
        script += &format!("  - say: \"{question}\"\n    after_ms: {after}\n");
    }
    script += "  - hangup: true\n    after_ms: 3000\n";
    let script_path = dir.join("caller.yaml");
    std::fs::write(&script_path, script).unwrap();

    let mut latencies = Vec::new();
    let (mut right, mut asked) = (0, 0);
    for call in 0..calls {
        // A phone per call on the registered port: SIPp gives up after 60 s.
        let phone = sipp_phone("agent_phone.xml", 1, phone_port, &voxnav, &dir);
        let uri = format!("sip:ivr@{voxnav}");
        let report = scripted_call_to(VOXNAV, &uri, &script_path, &["--no-transcribe"]);
        assert!(report["failure"].is_null(), "call {call}: {report}");
        // The call's assist lines, in the order they were printed.
        let seen: Vec<String> =
            std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(3)).ok()).collect();
        drop(phone);
        for record in records(&seen, "assist") {
            let latency = record["latency_ms"].as_u64().unwrap_or_default();
            let id = record["suggestion"]["id"]
                .as_str()
                .unwrap_or("-")
                .to_string();
            let text = record["text"].as_str().unwrap_or_default().to_string();
            let expected = QUESTIONS
                .iter()
                .find(|(_, entry)| *entry == id)
                .map(|(q, _)| *q);
            println!("call {call}: {latency:>5} ms  {id:<16} heard {text:?}");
            latencies.push(latency);
            asked += 1;
            right += usize::from(expected.is_some());
        }
        // Alice is available again after her wrap-up (10 s).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = voxnav::testkit::agent_state(&admin, TOKEN, "alice");
            if state == "available" {
                break;
            }
            assert!(Instant::now() < deadline, "Alice is still {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    latencies.sort_unstable();

    // The reference: Whisper alone on the same questions.
    let paths = installed_models();
    // The voice `voxnav call` speaks with.
    let tts = voxnav::speech::synthesizer_for(
        &paths,
        voxnav::dialplan::load::DEFAULT_VOICE,
        PiperConfig::default(),
        None,
    )
    .expect("Piper");
    let asr = WhisperRecognizer::new(
        &paths,
        WhisperConfig {
            jobs: 1,
            threads_per_job: 1,
            ..Default::default()
        },
    )
    .expect("Whisper");
    let mut alone = Vec::new();
    for _ in 0..calls {
        for (question, _) in QUESTIONS {
            let pcm = tts.speak_all(question).expect("speech");
            let audio = telephone(&pcm);
            let started = Instant::now();
            let heard =
                (asr.recognize(&audio, 8000, &RecognizeOptions::default())).expect("recognised");
            alone.push(started.elapsed().as_millis() as u64);
            if alone.len() <= QUESTIONS.len() {
                println!(
                    "alone: {:>5} ms  heard {:?}",
                    alone[alone.len() - 1],
                    heard.text
                );
            }
        }
    }
    alone.sort_unstable();
    let live = median(latencies.iter().map(|&v| v as f64).collect());
    let bare = median(alone.iter().map(|&v| v as f64).collect());
    println!(
        "assist: {} questions, {right} brought up an entry of the questions asked",
        asked
    );
    println!(
        "assist latency (voice end -> suggestion ready): median {live:.0} ms, p90 {} ms, max {} ms",
        percentile(&latencies, 0.9),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "reference, Whisper alone on the same questions: median {bare:.0} ms, p90 {} ms",
        percentile(&alone, 0.9)
    );
    println!(
        "ratio live / Whisper alone: {:.2}; on the desk add its 500 ms polling (250 ms mean)",
        live / bare.max(1.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
