//! The dashboard in headless Chromium after real calls. SIPp makes two live calls to the demo
//! hotline (real Whisper, MiniLM, Piper): one asks for its order by voice and types the number
//! (self-served); one says something the bot cannot place and hangs up (abandoned, and its
//! words land in the not-understood list). Chromium loads the page while the second call is
//! on the line (the live table shows it at its node with its transcript) and after both (KPI
//! tiles, call list, not-understood list, drop-off, and one call's turn-by-turn view). The
//! server's JSON log is checked for the call id on the call's events. A third call, from the
//! first call's number about the same thing, says goodbye and rates the call on the keypad:
//! the statistics count its survey score and the first call as not resolved at first contact.

use std::time::Duration;

use voxnav::testkit::{
    Server, chromium_dom, element_text, espeak_wav, free_udp_port, scripted_call_from,
    sipp_speaking_caller, temp_dir,
};

const TOKEN: &str = "dash-token";

fn finished(call: std::process::Child) {
    let out = call.wait_with_output().expect("sipp ends");
    assert!(
        out.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_dashboard_shows_live_and_recorded_calls_after_real_calls() {
    let dir = temp_dir("dashboard");
    let admin_port = free_udp_port();
    let records = dir.join("records.db");
    let server = Server::start(
        env!("CARGO_BIN_EXE_voxnav"),
        &[
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--admin-token",
            TOKEN,
            "--records",
            records.to_str().unwrap(),
        ],
        &[("VOXNAV_LOG_FORMAT", "json"), ("VOXNAV_LOG", "info")],
    );
    let base = format!("http://127.0.0.1:{admin_port}");
    let api = |path: &str| -> serde_json::Value {
        let auth = format!("Bearer {TOKEN}");
        let (status, body) = voxnav::net::http::fetch_with_headers(
            "GET",
            &format!("{base}{path}"),
            &[("Authorization", &auth)],
            None,
            Duration::from_secs(5),
        )
        .expect("the admin API answers");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    // The statistics once `n` calls have ended (the records writer is asynchronous).
    let stats_once_ended = |n: u64| {
        let mut stats = serde_json::Value::Null;
        for _ in 0..50 {
            stats = api("/api/stats");
            if stats["ended"] == n {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        stats
    };
    let profile = dir.join("chromium-profile");
    let page = |fragment: &str| {
        chromium_dom(
            &format!("{base}/dashboard#token={TOKEN}{fragment}"),
            &profile,
        )
    };

    // Before any call: the page loads, authenticates and shows empty tables.
    let dom = page("");
    assert_eq!(
        element_text(&dom, "kpi-calls").as_deref(),
        Some("0"),
        "{dom}"
    );
    assert!(element_text(&dom, "status").unwrap().starts_with("updated"));

    // Call 1: voice, then keypad; self-served.
    let first_dir = dir.join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    finished(sipp_speaking_caller(
        &first_dir,
        "uac_speech_dtmf.xml",
        "I want to track my order please",
        server.port,
    ));

    // An admin uploads a broken dialplan through the API: refused with file:line:col, the
    // file untouched, the same version serving (call 2 below is answered by it).
    let hotlines = api("/api/hotlines");
    let name = hotlines["hotlines"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let version = hotlines["hotlines"][0]["version"].as_u64().unwrap();
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dialplans/hotline.yaml"
    ))
    .unwrap();
    let (status, body) = voxnav::net::http::fetch_with_headers(
        "PUT",
        &format!("{base}/api/hotlines/{}", name.replace(' ', "%20")),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(&on_disk.replacen("start: ", "start: nowhere_", 1)),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("hotline.yaml:"), "{body}");
    assert_eq!(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dialplans/hotline.yaml"
        ))
        .unwrap(),
        on_disk,
        "a refused upload never touches the file"
    );
    let after = api("/api/hotlines");
    assert_eq!(after["hotlines"][0]["version"], version);
    assert!(
        after["hotlines"][0]["refused"]["problems"][0]["line"]
            .as_u64()
            .is_some(),
        "{after}"
    );

    // Call 2: words the hotline cannot place; the page watches it live.
    let second_dir = dir.join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = sipp_speaking_caller(
        &second_dir,
        "uac_speech.xml",
        "purple elephants are dancing on the moon tonight",
        server.port,
    );
    let mut live = None;
    for _ in 0..150 {
        let calls = api("/api/calls");
        if let Some(call) = calls["calls"].as_array().and_then(|c| c.first())
            && call["transcript"].to_string().contains("caller: ")
        {
            live = Some(call.clone());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let live = live.expect("the second call is live with the caller's words");
    let dom = page("");
    let table = element_text(&dom, "live-calls").unwrap();
    assert!(
        table.contains(live["call_id"].as_str().unwrap()),
        "the live table shows the call: {table}"
    );
    assert!(table.contains("menu"), "its node: {table}");
    assert!(table.contains("caller: "), "its transcript: {table}");
    assert_eq!(element_text(&dom, "kpi-live").as_deref(), Some("1"));
    assert!(
        element_text(&dom, "hotline")
            .unwrap()
            .contains("last edit refused"),
        "the header shows the refused edit"
    );
    finished(second);

    // Both calls recorded.
    let summary = stats_once_ended(2);
    assert_eq!(summary["ended"], 2, "{summary}");
    assert_eq!(summary["outcomes"]["self_served"], 1, "{summary}");
    assert_eq!(summary["outcomes"]["abandoned"], 1, "{summary}");

    let dom = page("");
    let text = |id: &str| element_text(&dom, id).unwrap_or_else(|| panic!("#{id} in {dom}"));
    assert_eq!(text("kpi-calls"), "2");
    assert_eq!(text("kpi-live"), "0");
    assert_eq!(text("kpi-containment"), "50%");
    assert_eq!(text("kpi-transfer"), "0%");
    assert!(
        text("kpi-latency").ends_with(" s"),
        "{}",
        text("kpi-latency")
    );
    let calls = text("call-list");
    assert!(
        calls.contains("self_served") && calls.contains("abandoned"),
        "{calls}"
    );
    // Callers by number: the asserted identity of call 1, the From user of call 2.
    assert!(
        calls.contains("+15550199") && calls.contains("sipp"),
        "{calls}"
    );
    let heard = text("not-understood");
    assert!(
        heard.to_lowercase().contains("elephant"),
        "the not-understood list has the caller's words: {heard}"
    );
    assert!(text("intents").contains("order_status"));
    assert!(
        text("drop-off").contains("menu"),
        "call 2 dropped at the menu: {}",
        text("drop-off")
    );
    // The charts drew the calls.
    assert!(dom.contains("<rect"), "the calls chart has bars");

    // One call's turn-by-turn view: the self-served call.
    let list = api("/api/records/calls?outcome=self_served");
    let id = list["calls"][0]["call_id"].as_str().unwrap().to_string();
    let dom = page(&format!("&call={id}"));
    assert!(element_text(&dom, "call-title").unwrap().contains(&id));
    let turns = element_text(&dom, "turns").unwrap();
    for expected in [
        "(call start)",
        "order_status",
        "#dtmf 472198",
        "Order 472198 is shipped",
    ] {
        assert!(turns.contains(expected), "{expected} in the turns: {turns}");
    }
    assert!(
        element_text(&dom, "call-summary")
            .unwrap()
            .contains("outcome self_served")
    );
    // The log: JSON lines on stderr; every event of a call carries its id.
    let second_id = live["call_id"].as_str().unwrap();
    let log = std::fs::read_to_string(&server.log).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_call =
        |e: &serde_json::Value| e["span"]["id"] == second_id || e["fields"]["call"] == second_id;
    let messages: Vec<&str> = events
        .iter()
        .filter(|e| of_call(e))
        .filter_map(|e| e["fields"]["message"].as_str())
        .collect();
    for expected in ["call answered", "turn", "call ended", "media finished"] {
        assert!(messages.contains(&expected), "{expected} in {messages:?}");
    }
    let heard = events
        .iter()
        .find(|e| {
            of_call(e)
                && e["fields"]["input"]
                    .as_str()
                    .is_some_and(|i| i.to_lowercase().contains("elephant"))
        })
        .expect("the not-understood turn is logged with the call id");
    assert!(
        heard["fields"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not understood"),
        "{heard}"
    );
    let turns_without_call = events
        .iter()
        .filter(|e| e["fields"]["message"] == "turn" && e["span"]["id"].as_str().is_none())
        .count();
    assert_eq!(turns_without_call, 0, "every turn event is in a call span");
    // Before call 3: one judged call (call 1: a number and a matter), resolved so far; no
    // survey answered.
    let before = api("/api/stats");
    assert_eq!(before["first_contact"]["judged"], 1, "{before}");
    assert_eq!(before["first_contact"]["resolved"], 1, "{before}");
    assert_eq!(before["survey"]["responses"], 0, "{before}");

    // Call 3: the same number, about its order again; then goodbye and a 4 on the keypad.
    espeak_wav("where is my order", &dir, "order");
    espeak_wav("no, that's all, goodbye", &dir, "bye");
    let script = dir.join("third.yaml");
    std::fs::write(
        &script,
        "turns:\n  - wav: order.wav\n  - dtmf: \"472198#\"\n  - wav: bye.wav\n  - dtmf: \"4\"\n",
    )
    .unwrap();
    let report = scripted_call_from(
        env!("CARGO_BIN_EXE_voxnav"),
        server.port,
        &script,
        "+15550199",
    );
    assert!(report["failure"].is_null(), "{report}");
    let after = stats_once_ended(3);
    assert_eq!(after["ended"], 3, "{after}");
    assert_eq!(after["outcomes"]["self_served"], 2, "{after}");
    assert_eq!(after["survey"]["responses"], 1, "{after}");
    assert_eq!(after["survey"]["average"], 4.0, "{after}");
    // Call 1 was followed by another call about the same matter: not resolved at first
    // contact; call 3 is, so far.
    assert_eq!(after["first_contact"]["judged"], 2, "{after}");
    assert_eq!(after["first_contact"]["resolved"], 1, "{after}");
    let dom = page("");
    assert_eq!(element_text(&dom, "kpi-fcr").as_deref(), Some("50%"));
    assert_eq!(
        element_text(&dom, "kpi-satisfaction").as_deref(),
        Some("4.0 (1)")
    );
    drop(server);
}
