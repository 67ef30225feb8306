//! The Mandarin hotline by voice over loopback: `voxnav serve` answers
//! `dialplans/hotline-zh.yaml`; the scripted caller speaks Mandarin (espeak-ng's Mandarin as
//! telephone-band RTP), voxnav recognises it with Whisper in Mandarin and routes it with the
//! character-level router, asks for the order number in Mandarin (espeak-ng's Mandarin voice,
//! the hotline's `voice:`), the caller keys it, and voxnav says the status in Mandarin. The
//! caller's side transcribes the bot in Mandarin: it heard Chinese, not an English voice.
//!
//! Recognition of synthetic Mandarin by Whisper base is poor (`cargo bench --bench mandarin`:
//! ~80% character error rate), so the request is one the router places from a rough
//! transcript, and the caller-side check is on the script heard, not on exact words.

use voxnav::testkit::{Server, records, scripted_call_with, temp_dir};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

fn han(text: &str) -> usize {
    text.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
}

#[test]
fn a_mandarin_caller_asks_by_voice_and_hears_the_status_in_mandarin() {
    let dir = temp_dir("live-mandarin");
    let server = Server::start_hotline(VOXNAV, "dialplans/hotline-zh.yaml", &[], &[]);
    let script = dir.join("zh.yaml");
    std::fs::write(
        &script,
        "turns:\n  - say: \"我买的东西发货了吗\"\n  - dtmf: \"472198#\"\n",
    )
    .unwrap();
    let report = scripted_call_with(
        VOXNAV,
        server.port,
        &script,
        &["--voice", "espeak:cmn-latn-pinyin", "--language", "zh"],
    );
    let lines = server.lines_until_quiet(std::time::Duration::from_secs(2));
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
        "voice-to-voice latencies (ms): {}; the caller heard: {}",
        report["voice_to_voice_ms"],
        bot.iter()
            .map(|b| b["text"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
