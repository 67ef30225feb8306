//! Two hotlines on one server, chosen by the number the caller dials: `voxnav serve --config`
//! answers 4000 with the English demo (`dialplans/hotline.yaml`) and +1 555 0101 with the
//! Mandarin demo (`dialplans/hotline-zh.yaml`), and only calls from its trunk (127.0.0.1).
//!
//! - The English caller asks by voice and keys the number; the status comes back in English.
//! - The Mandarin caller speaks Mandarin (espeak-ng's Mandarin as telephone-band RTP):
//!   voxnav recognises it with Whisper in Mandarin, routes it with the character-level
//!   router, asks for the order number in Mandarin (espeak-ng's Mandarin voice, the hotline's
//!   `voice:`), the caller keys it, and voxnav says the status in Mandarin. The caller's side
//!   transcribes the bot in Mandarin: it heard Chinese, not an English voice.
//!   Recognition of synthetic Mandarin by Whisper base is poor (`cargo bench --bench
//!   mandarin`: ~80% character error rate), so the request is one the router places from a
//!   rough transcript, and the caller-side check is on the script heard, not exact words.
//! - A number no hotline answers gets 404; a peer outside the trunks gets 403.
//! - Records, statistics, live calls and metrics are per hotline and overall; the dashboard's
//!   hotline selector (headless Chromium) scopes the call list and the figures.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use voxnav::testkit::{Server, free_udp_port, records, scripted_call_to, temp_dir};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");
const TOKEN: &str = "lines-token";
const ENGLISH: &str = "Online store customer service";
const MANDARIN: &str = "网店客服 (Mandarin demo)";

fn han(text: &str) -> usize {
    text.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
}

/// A query-string value.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One SIP request from `from` (a loopback address) and the status of its answer.
fn status_of(from: &str, server: u16, method: &str, user: &str) -> (u16, String) {
    let sock = UdpSocket::bind((from, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let (ctype, body) = if method == "INVITE" {
        ("Content-Type: application/sdp\r\n", body)
    } else {
        ("", "")
    };
    let request = format!(
        "{method} sip:{user}@127.0.0.1:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{method}{user};rport\r\n\
         From: <sip:probe@{local}>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {method}-{user}-{local}\r\n\
         CSeq: 1 {method}\r\nContact: <sip:probe@{local}>\r\nMax-Forwards: 70\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let to: SocketAddr = ([127, 0, 0, 1], server).into();
    sock.send_to(request.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer");
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = reply[8..11].parse().unwrap();
        if code >= 200 {
            return (code, reply);
        }
    }
}

#[test]
fn two_hotlines_answer_their_own_numbers_in_their_own_languages() {
    let dir = temp_dir("live-hotlines");
    let admin_port = free_udp_port();
    let config = dir.join("voxnav.yaml");
    std::fs::write(
        &config,
        format!(
            "sip:\n  trunks: [127.0.0.1]\nhotlines:\n  \"4000\": dialplans/hotline.yaml\n  \
             \"+1 555 0101\": dialplans/hotline-zh.yaml\nrecords:\n  path: {}\nadmin:\n  listen: 127.0.0.1:{admin_port}\n",
            dir.join("records.db").display()
        ),
    )
    .unwrap();
    let server = Server::start_serving(
        VOXNAV,
        &[
            "--config",
            config.to_str().unwrap(),
            "--demo-orders",
            "--admin-token",
            TOKEN,
        ],
        &[],
    );
    let api = |path: &str| -> serde_json::Value {
        let (status, body) = voxnav::net::http::fetch_with_headers(
            "GET",
            &format!("http://127.0.0.1:{admin_port}{path}"),
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
            Duration::from_secs(5),
        )
        .expect("the admin API answers");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let hotlines = api("/api/hotlines");
    let numbers = |name: &str| {
        hotlines["hotlines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["numbers"].clone())
            .unwrap_or_else(|| panic!("{name} in {hotlines:#}"))
    };
    assert_eq!(numbers(ENGLISH), serde_json::json!(["4000"]));
    assert_eq!(numbers(MANDARIN), serde_json::json!(["+15550101"]));

    // Refused: a number no hotline answers, and a peer that is not a trunk.
    let (code, reply) = status_of("127.0.0.1", server.port, "INVITE", "4999");
    assert_eq!(code, 404, "{reply}");
    assert!(reply.contains("no hotline answers 4999"), "{reply}");
    for method in ["INVITE", "OPTIONS"] {
        let (code, reply) = status_of("127.0.0.2", server.port, method, "4000");
        assert_eq!(code, 403, "{method} from outside the trunks: {reply}");
    }

    // 4000: the English demo.
    let english = dir.join("en.yaml");
    std::fs::write(
        &english,
        "turns:\n  - say: \"Hi, I'd like to check where my order is.\"\n  - dtmf: \"472198#\"\n",
    )
    .unwrap();
    let report = scripted_call_to(
        VOXNAV,
        &format!("sip:4000@127.0.0.1:{}", server.port),
        &english,
        &[],
    );
    let lines = server.lines_until_quiet(Duration::from_secs(2));
    let decisions = records(&lines, "decision");
    assert!(
        decisions.iter().any(|d| d["intent"] == "order_status"),
        "{decisions:#?}"
    );
    assert!(
        decisions.iter().any(|d| d["say"]
            .as_str()
            .is_some_and(|s| s.contains("Order 472198 is shipped"))),
        "{decisions:#?}"
    );
    // The caller heard English (Whisper on the caller's side, in English).
    let heard = voxnav::testkit::bot_words(&report);
    assert!(heard.contains("order") && han(&heard) == 0, "{heard}");

    // +1 555 0101: the Mandarin demo, by voice.
    let mandarin = dir.join("zh.yaml");
    std::fs::write(
        &mandarin,
        "turns:\n  - say: \"我买的东西发货了吗\"\n  - dtmf: \"472198#\"\n",
    )
    .unwrap();
    let report = scripted_call_to(
        VOXNAV,
        &format!("sip:+15550101@127.0.0.1:{}", server.port),
        &mandarin,
        &["--voice", "espeak:cmn-latn-pinyin", "--language", "zh"],
    );
    let lines = server.lines_until_quiet(Duration::from_secs(2));
    let decisions = records(&lines, "decision");
    // The caller's Mandarin request, recognised and routed by voice.
    let asked = decisions
        .iter()
        .find(|d| d["input"].as_str().is_some_and(|i| han(i) > 0))
        .unwrap_or_else(|| panic!("no Mandarin input recognised: {decisions:#?}"));
    assert_eq!(asked["intent"], "order_status", "{asked:#}");
    assert!(
        asked["say"].as_str().unwrap().contains("订单号"),
        "{asked:#}"
    );
    // The keyed number, looked up and answered in Mandarin.
    assert!(
        decisions
            .iter()
            .any(|d| d["slots"]["order_number"] == "472198"),
        "{decisions:#?}"
    );
    assert!(
        decisions.iter().any(|d| d["say"]
            .as_str()
            .is_some_and(|s| s.contains("订单472198已发货"))),
        "{decisions:#?}"
    );
    // What the caller heard: every reply Chinese (Whisper in Mandarin writes Han characters
    // for it; an English voice would come out as Latin letters or nothing).
    let bot = report["bot"].as_array().expect("the bot's replies");
    assert!(bot.len() >= 3, "greeting, question, status: {report:#}");
    for reply in bot {
        let text = reply["text"].as_str().unwrap_or_default();
        assert!(
            han(text) >= 2,
            "a reply not heard as Chinese: {text:?} in {report:#}"
        );
    }
    println!(
        "Mandarin voice-to-voice latencies (ms): {}; the caller heard: {}",
        report["voice_to_voice_ms"],
        bot.iter()
            .map(|b| b["text"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" / ")
    );

    // Per hotline and overall: records, statistics, metrics (records are written off the
    // call path: wait for both to be ended).
    let mut overall = serde_json::Value::Null;
    for _ in 0..100 {
        overall = api("/api/stats");
        if overall["ended"] == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(overall["ended"], 2, "{overall:#}");
    for name in [ENGLISH, MANDARIN] {
        let stats = api(&format!("/api/stats?hotline={}", encoded(name)));
        assert_eq!(stats["calls"], 1, "{name}: {stats:#}");
        assert_eq!(
            stats["intents"][0]["name"], "order_status",
            "{name}: {stats:#}"
        );
        let calls = api(&format!("/api/records/calls?hotline={}", encoded(name)));
        assert_eq!(calls["calls"].as_array().unwrap().len(), 1, "{calls:#}");
        assert_eq!(calls["calls"][0]["hotline"], name, "{calls:#}");
    }
    assert_eq!(api("/api/stats?hotline=nobody")["calls"], 0);
    let (_, metrics) = voxnav::net::http::fetch(
        "GET",
        &format!("http://127.0.0.1:{admin_port}/metrics"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    for name in [ENGLISH, MANDARIN] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("voxnav_call_outcomes_total{{hotline=\"{name}\""))),
            "{name} in\n{metrics}"
        );
    }
    // The dashboard: the hotline selector lists both with their numbers; choosing one scopes
    // the call list to its call.
    let mut page = voxnav::testkit::Browser::open(
        &format!("http://127.0.0.1:{admin_port}/dashboard#token={TOKEN}"),
        &dir.join("browser"),
    );
    let wait = Duration::from_secs(30);
    let options = page.wait_for(
        "$('hotline-filter').options.length === 3 && [...$('hotline-filter').options].map((o) => o.text).join(' | ')",
        wait,
    );
    assert!(
        options
            .as_str()
            .unwrap()
            .contains(&format!("{MANDARIN} (+15550101)"))
            && options
                .as_str()
                .unwrap()
                .contains(&format!("{ENGLISH} (4000)")),
        "{options}"
    );
    page.wait_for(
        "$('call-list').querySelectorAll('tr[data-call-id]').length === 2",
        wait,
    );
    page.eval(&format!(
        "$('hotline-filter').value = {}; $('hotline-filter').dispatchEvent(new Event('change')); true",
        serde_json::json!(MANDARIN)
    ));
    let scoped = page.wait_for(
        "$('call-list').querySelectorAll('tr[data-call-id]').length === 1 && $('call-list').innerText",
        wait,
    );
    assert!(
        scoped.as_str().unwrap().contains(MANDARIN) && !scoped.as_str().unwrap().contains(ENGLISH),
        "{scoped}"
    );
    assert_eq!(page.eval("$('kpi-calls').textContent"), "1");
    drop(page);
    let _ = std::fs::remove_dir_all(&dir);
}
