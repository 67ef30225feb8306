//! A live call to the demo hotline with real speech: SIPp dials `voxnav serve --dialplan`,
//! waits into the greeting, then speaks (espeak-ng, not the product's voice, as telephone-band
//! mu-law RTP). voxnav endpoints the utterance, recognises it with Whisper, routes it with the
//! MiniLM router and asks for the order number by voice; the caller types 472198# (RFC 4733),
//! voxnav looks it up in the demo order service and says the status. The test reads the
//! decision and latency records voxnav prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use voxnav::testkit::{KillOnDrop, free_udp_port, sipp_speaking_caller, temp_dir};

#[test]
fn a_caller_asks_for_their_order_by_voice_then_types_the_number_and_hears_the_status() {
    let dir = temp_dir("live-call");

    let port = free_udp_port();
    let admin_port = free_udp_port(); // free for TCP too in practice on loopback
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_voxnav"))
            .args(["serve", "--sip-listen", &format!("127.0.0.1:{port}")])
            .args(["--dialplan", "dialplans/hotline.yaml", "--demo-orders"])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(["--admin-token", TOKEN])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts"),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = server.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Models load before the SIP socket opens.
    let first = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("listening line");
    assert!(first.contains("SIP listening"), "{first}");
    // Calls wait until the server is ready (its prompts synthesised).
    while lines
        .recv_timeout(Duration::from_secs(120))
        .expect("the ready line")
        != "voxnav: ready"
    {}

    let admin = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        voxnav::net::http::fetch_with_headers(
            "GET",
            &format!("http://127.0.0.1:{admin_port}{path}"),
            &headers,
            None,
            Duration::from_secs(5),
        )
        .expect("the admin API answers")
    };
    // The admin API: open health and metrics, the rest behind the token.
    let mut tries = 0;
    while voxnav::net::http::fetch(
        "GET",
        &format!("http://127.0.0.1:{admin_port}/healthz"),
        None,
        Duration::from_secs(1),
    )
    .is_err()
        && tries < 50
    {
        std::thread::sleep(Duration::from_millis(100));
        tries += 1;
    }
    assert_eq!(admin("/healthz", None), (200, "ok".into()));
    assert_eq!(admin("/api/calls", None).0, 401, "no token");
    assert_eq!(admin("/api/calls", Some("wrong")).0, 401, "wrong token");
    let (status, body) = admin("/api/calls", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(live["calls"], serde_json::json!([]), "{body}");
    assert!(
        live["server"].is_string(),
        "the server names itself: {body}"
    );

    let sipp = sipp_speaking_caller(
        &dir,
        "uac_speech_dtmf.xml",
        "I want to track my order please",
        port,
    );
    // While the call is up, the API shows it with its node and transcript.
    let mut seen_live = None;
    for _ in 0..100 {
        let (_, body) = admin("/api/calls", Some(TOKEN));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(call) = v["calls"].as_array().and_then(|c| c.first())
            && call["node"] == "order_lookup/ask_number"
        {
            seen_live = Some(call.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let live = seen_live.expect("the live call at the order number question");
    // The trunk's P-Asserted-Identity, not the From user (`sipp`), names the caller.
    assert_eq!(live["caller"], "+15550199", "{live}");
    assert!(
        live["transcript"].to_string().contains("caller: "),
        "{live}"
    );
    let out = sipp.wait_with_output().expect("sipp ends");
    assert!(
        out.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut decisions = Vec::new();
    let mut latencies = Vec::new();
    let mut calls = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        if let Some(json) = line.strip_prefix("voxnav: call-started ") {
            calls.push(serde_json::from_str::<serde_json::Value>(json).unwrap());
        }
        if let Some(json) = line.strip_prefix("voxnav: decision ") {
            decisions.push(serde_json::from_str::<serde_json::Value>(json).unwrap());
        }
        if let Some(json) = line.strip_prefix("voxnav: latency ") {
            latencies.push(serde_json::from_str::<serde_json::Value>(json).unwrap());
        }
        if line.starts_with("voxnav: media ") {
            break;
        }
    }
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["caller"], "+15550199", "{calls:#?}");
    // The call starts by looking the caller up; this number has no order, so the usual
    // greeting follows.
    assert_eq!(decisions[0]["action"], "http", "{decisions:#?}");
    let greeting = decisions
        .iter()
        .position(|d| d["say"].as_str().unwrap().contains("Thanks for calling"))
        .expect("the greeting");
    let turn = &decisions[greeting + 1];
    let heard = turn["input"].as_str().unwrap().to_lowercase();
    assert!(heard.contains("order"), "what Whisper heard: {heard}");
    assert_eq!(turn["intent"], "order_status", "{turn}");
    assert_eq!(turn["node"], "order_lookup/ask_number", "{turn}");
    assert!(
        turn["say"].as_str().unwrap().contains("order number"),
        "{turn}"
    );
    // The keypad turn fills the slot and starts the lookup; the backend reply is answered.
    let typed = decisions
        .iter()
        .find(|d| d["input"] == "#dtmf 472198")
        .expect("the keypad turn");
    assert_eq!(typed["slots"]["order_number"], "472198", "{typed}");
    assert_eq!(typed["action"], "http", "{typed}");
    let answer = decisions
        .iter()
        .rfind(|d| d["input"] == "(backend reply)")
        .expect("the order lookup's reply");
    assert_eq!(answer["decision"], "answer", "{answer}");
    assert!(
        answer["say"]
            .as_str()
            .unwrap()
            .contains("Order 472198 is shipped"),
        "{answer}"
    );
    // The turn was timed: endpoint -> ASR -> decision -> reply audio queued, in the decision
    // record itself and in its own line.
    assert!(
        turn["latency"]["detected_to_audio_ms"].as_u64().is_some(),
        "{turn}"
    );
    let latency = latencies.first().expect("a latency record for the turn");
    for key in [
        "asr_ms",
        "decide_ms",
        "reply_audio_ms",
        "detected_to_audio_ms",
    ] {
        assert!(latency[key].as_u64().is_some(), "{latency}");
    }
    // The metrics counted the call, its turns, intent, latency, outcome and packets.
    let (status, metrics) = admin("/metrics", None);
    assert_eq!(status, 200);
    for line in [
        "voxnav_calls_total{transport=\"udp\"} 1",
        "voxnav_calls_active 0",
        "voxnav_intents_total{intent=\"order_status\"} 1",
        "voxnav_call_outcomes_total{hotline=\"Online store customer service\",outcome=\"self_served\"} 1",
        "voxnav_turn_latency_seconds_count{stage=\"detected_to_audio\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        value("voxnav_turns_total{decision=\"dialplan\"}") >= 2,
        "{metrics}"
    );
    assert!(
        value("voxnav_sip_responses_total{code=\"200\"}") >= 1,
        "{metrics}"
    );
    assert!(
        value("voxnav_rtp_packets_total{direction=\"sent\"}") > 100,
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const TOKEN: &str = "test-admin-token";
