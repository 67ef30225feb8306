//! Turn-taking on live calls over loopback (the default detector: Silero VAD and Smart Turn),
//! with `voxnav call` as the caller speaking the product voice (Piper) through G.711:
//! a number read in two groups, a hesitation, backchannels and a cough over a prompt, a real
//! barge-in; and bad input: music instead of speech, a caller who never stops, RTP that stops
//! mid-utterance. Each test reads the caller's report and the server's records.

use std::path::{Path, PathBuf};
use std::time::Duration;

use voxnav::media::wav;
use voxnav::speech::{PiperConfig, PiperSynthesizer, Synthesizer};
use voxnav::testkit::{
    Server, bot_words, installed_models, records, scripted_call, sipp_speaking_caller, temp_dir,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

/// One live call at a time: each server runs Whisper and Piper on the machine's cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Audio pieces in the product voice (or silence, or given samples), joined into a WAV.
enum Piece<'a> {
    Say(&'a str),
    Silence(u32),
    Samples(Vec<i16>),
}

fn wav_of(dir: &Path, name: &str, pieces: &[Piece]) -> PathBuf {
    static TTS: std::sync::OnceLock<PiperSynthesizer> = std::sync::OnceLock::new();
    let tts = TTS.get_or_init(|| {
        PiperSynthesizer::new(&installed_models(), deterministic()).expect("piper")
    });
    let mut pcm: Vec<i16> = Vec::new();
    for p in pieces {
        match p {
            Piece::Say(t) => {
                let spoken = tts.speak_all(t).expect("piper speaks");
                // Without the voice's own trailing pause, so the silences are exact.
                let last = spoken
                    .chunks(160)
                    .rposition(|c| c.iter().any(|s| s.unsigned_abs() > 300))
                    .map_or(0, |i| (i + 1) * 160);
                pcm.extend(&spoken[..last.min(spoken.len())]);
            }
            Piece::Silence(ms) => pcm.extend(vec![0; *ms as usize * 8]),
            Piece::Samples(s) => pcm.extend(s),
        }
    }
    let path = dir.join(format!("{name}.wav"));
    let samples = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
    wav::write(
        &path,
        &wav::Audio {
            samples,
            sample_rate: 8000,
        },
    )
    .unwrap();
    path
}

fn script(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("script.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A cough: two bursts of shaped noise (sharp attack, fast decay).
fn cough() -> Vec<i16> {
    let mut seed = 7u32;
    let mut out = Vec::new();
    for _ in 0..2 {
        for i in 0..8 * 180 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let white = (seed >> 16) as f32 / 32_768.0 - 1.0;
            let envelope = (-(i as f32) / (8.0 * 50.0)).exp();
            out.push((white * envelope * 12_000.0) as i16);
        }
        out.extend(vec![0; 8 * 120]);
    }
    out
}

#[test]
fn a_number_read_in_two_groups_and_a_hesitation_are_heard_whole() {
    let _one = serial();
    let dir = temp_dir("turns-number");
    wav_of(&dir, "track", &[Piece::Say("I want to track my order.")]);
    // "four seven two" ... one second ... "one nine eight".
    wav_of(
        &dir,
        "number",
        &[
            Piece::Say("Four seven two."),
            Piece::Silence(1000),
            Piece::Say("One nine eight."),
        ],
    );
    // A caller who stops to think mid-sentence (700 ms: the old fixed rule cut there).
    wav_of(
        &dir,
        "hesitate",
        &[
            Piece::Say("I would like to"),
            Piece::Silence(700),
            Piece::Say("know your opening hours."),
        ],
    );
    let server = Server::start(VOXNAV, &[], &[]);
    let report = scripted_call(
        VOXNAV,
        server.port,
        &script(
            &dir,
            "turns:\n  - wav: track.wav\n  - wav: number.wav\n  - wav: hesitate.wav\n  - hangup: true\n",
        ),
    );
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let decisions = records(&lines, "decision");
    let number = decisions
        .iter()
        .find(|d| d["slots"]["order_number"].is_string())
        .unwrap_or_else(|| panic!("no order number: {decisions:#?}\n{report}"));
    assert_eq!(number["slots"]["order_number"], "472198", "{number}");
    assert!(
        decisions.iter().any(|d| d["input"] == "(backend reply)"
            && d["say"].as_str().unwrap_or_default().contains("472198")),
        "the lookup of the whole number: {decisions:#?}"
    );
    let hours = decisions
        .iter()
        .find(|d| d["kb"] == "service_hours")
        .unwrap_or_else(|| panic!("the hesitating caller was cut off: {decisions:#?}"));
    let input = hours["input"].as_str().unwrap().to_lowercase();
    assert!(
        input.contains("like") && input.contains("hours"),
        "one turn with both halves: {input}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn backchannels_and_a_cough_do_not_interrupt_and_real_speech_does_at_once() {
    let _one = serial();
    let dir = temp_dir("turns-barge");
    wav_of(&dir, "uhhuh", &[Piece::Say("Uh-huh.")]);
    wav_of(&dir, "mhm", &[Piece::Say("Mm-hmm.")]);
    wav_of(&dir, "cough", &[Piece::Samples(cough())]);
    wav_of(&dir, "hours", &[Piece::Say("What are your opening hours?")]);
    let server = Server::start(VOXNAV, &[], &[]);
    // Over the greeting (about 8 s): "uh-huh" at 1.5 s, a cough a second after it ends,
    // "mm-hmm" a second after that; then the caller waits for the bot to finish.
    let report = scripted_call(
        VOXNAV,
        server.port,
        &script(
            &dir,
            "turns:\n  - wav: uhhuh.wav\n    at_ms: 1500\n  - wav: cough.wav\n    after_ms: 1000\n  \
             - wav: mhm.wav\n    after_ms: 1000\n  - hangup: true\n",
        ),
    );
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let barge_ins = records(&lines, "barge-in");
    assert!(
        barge_ins.iter().all(|b| b["resumed"] == true),
        "a held prompt always resumed: {barge_ins:?}\n{report}"
    );
    // The greeting went on to its end, and nothing the caller made was a turn.
    assert!(
        bot_words(&report).contains("how can i help"),
        "{}",
        bot_words(&report)
    );
    let decisions = records(&lines, "decision");
    let inputs: Vec<&str> = decisions
        .iter()
        .map(|d| d["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        ["(call start)", "(backend reply)"],
        "only the call's start and its caller lookup: {decisions:#?}"
    );

    // A real question 2.5 s into the greeting stops it within 300 ms (caller side).
    let report = scripted_call(
        VOXNAV,
        server.port,
        &script(
            &dir,
            "turns:\n  - wav: hours.wav\n    at_ms: 2500\n  - hangup: true\n",
        ),
    );
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let barge_ins = records(&lines, "barge-in");
    assert_eq!(barge_ins.len(), 1, "{barge_ins:?}");
    assert_eq!(barge_ins[0]["resumed"], false);
    let decisions = records(&lines, "decision");
    assert!(
        decisions.iter().any(|d| d["kb"] == "service_hours"),
        "{decisions:#?}"
    );
    let talked_over = report["turns"][0]["talked_over_ms"]
        .as_u64()
        .expect("the bot was talking when the question began");
    assert!(
        talked_over <= 300,
        "the prompt stopped {talked_over} ms after the caller began: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn music_a_caller_who_never_stops_and_rtp_that_stops_all_get_an_answer() {
    let _one = serial();
    let dir = temp_dir("turns-bad");
    // Forty seconds of music instead of speech: Silero hears no speech; the no-input
    // reprompts come while it plays.
    let music: Vec<i16> = (0..8000 * 40)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let note = [261.6f32, 329.6, 392.0, 523.3][(i / 4000) % 4];
            ((std::f32::consts::TAU * note * t).sin() * 0.2
                + (std::f32::consts::TAU * note * 1.5 * t).sin() * 0.1)
                .mul_add(20_000.0, 0.0) as i16
        })
        .collect();
    wav_of(&dir, "music", &[Piece::Samples(music)]);
    // Twenty seconds of talking without a pause long enough to end a turn.
    let text = "and then I went to the shop and then I went home and then";
    let talk: Vec<Piece> = (0..12).map(|_| Piece::Say(text)).collect();
    wav_of(&dir, "talk", &talk);
    let server = Server::start(VOXNAV, &[], &[]);
    let report = scripted_call(
        VOXNAV,
        server.port,
        &script(
            &dir,
            "turns:\n  - wav: music.wav\n    after_ms: 0\n  - wav: talk.wav\n    after_ms: 500\n  - hangup: true\n",
        ),
    );
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let decisions = records(&lines, "decision");
    let silences = decisions
        .iter()
        .filter(|d| d["input"] == "(silence)")
        .count();
    assert!(
        silences >= 1,
        "music is no input: the bot reprompts: {decisions:#?}\n{report}"
    );
    let capped = records(&lines, "latency")
        .into_iter()
        .find(|l| l["ended_by"] == "cap")
        .unwrap_or_else(|| panic!("the endless turn was capped: {lines:#?}"));
    assert!(capped["voice_to_voice_ms"].as_u64().is_some());

    // RTP that stops mid-utterance (SIPp streams the words, then sends nothing): the
    // turn ends by silence, is recognised and answered.
    let sipp_dir = dir.join("sipp");
    std::fs::create_dir_all(&sipp_dir).unwrap();
    let sipp = sipp_speaking_caller(
        &sipp_dir,
        "uac_speech.xml",
        "what are your opening hours",
        server.port,
    );
    let out = sipp.wait_with_output().expect("sipp ends");
    assert!(
        out.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = server.lines_until_quiet(Duration::from_secs(3));
    let decisions = records(&lines, "decision");
    assert!(
        decisions.iter().any(|d| d["kb"] == "service_hours"),
        "answered after the stream stopped: {decisions:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The product voice without Piper's random variation, so runs hear the same audio.
fn deterministic() -> PiperConfig {
    PiperConfig {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..Default::default()
    }
}
