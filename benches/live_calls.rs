//! Live calls on loopback: voice-to-voice latency, recognition accuracy and CPU with 1, 5, 10,
//! 15 and 20 callers talking at once (`VOXNAV_BENCH_CALLERS=1,5` to choose), each doing a
//! realistic mix of 11 turns in the product voice (Piper) through G.711: knowledge questions,
//! intents, an order number read in two groups, a hesitation, goodbye.
//!
//! Latency is measured on the callers' side by `voxnav call` (last voiced caller packet ->
//! first voiced bot packet). Recognition is scored from the server's decision records: word
//! error rate of each call's recognised turns against what was said, and split turns (a turn
//! the server heard as two: cut off). Keypad offers (recognition unavailable) are counted
//! from the server's log. CPU is the server's, per talking caller, and per idle caller (on the
//! line, silent, hearing prompts). Then the capacity changes in one run: the same load with
//! `--asr-jobs 1`, the default two recognitions at once, overflow to Moonshine
//! (`--asr-overflow 1`) and Moonshine alone (`VOXNAV_BENCH_COMPARE=N` sets the load).
//!
//! `cargo bench --bench live_calls` (about 20 minutes).

use std::path::Path;
use std::time::{Duration, Instant};

use voxnav::media::wav;
use voxnav::speech::{PiperConfig, PiperSynthesizer, Synthesizer};
use voxnav::testkit::{
    BenchServer, cpu_ms_and_rss_kb, installed_models, percentile, records, scripted_call_reports,
    temp_dir, word_errors,
};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

/// One caller turn: what is said (pieces joined by pauses of the given milliseconds).
struct Turn {
    name: &'static str,
    pieces: &'static [(&'static str, u32)],
}

/// The mix every caller goes through (the demo hotline's flow: menu, knowledge answers, an
/// order lookup, "anything else?").
const TURNS: [Turn; 11] = [
    Turn {
        name: "hours",
        pieces: &[("What are your opening hours?", 0)],
    },
    Turn {
        name: "shipping",
        pieces: &[("How much is shipping?", 0)],
    },
    Turn {
        name: "track",
        pieces: &[("I want to track my order.", 0)],
    },
    Turn {
        name: "number",
        pieces: &[("Four seven two.", 800), ("One nine eight.", 0)],
    },
    Turn {
        name: "giftcard",
        pieces: &[("Do you take gift cards?", 0)],
    },
    Turn {
        name: "hesitate",
        pieces: &[("I'd like to, um,", 600), ("return an item.", 0)],
    },
    Turn {
        name: "warranty",
        pieces: &[("What is the warranty?", 0)],
    },
    Turn {
        name: "delivery",
        pieces: &[("How long does delivery take?", 0)],
    },
    Turn {
        name: "address",
        pieces: &[("Can I change my delivery address?", 0)],
    },
    Turn {
        name: "member",
        pieces: &[("What are the membership benefits?", 0)],
    },
    Turn {
        name: "bye",
        pieces: &[("That's all, thanks. Goodbye.", 0)],
    },
];

/// Writes each turn's audio (Piper, trailing silence trimmed) and the call script; returns
/// the reference text of the spoken turns, in order.
fn prepare(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let tts = PiperSynthesizer::new(&installed_models(), deterministic()).expect("piper");
    let mut script = String::from("turns:\n");
    let mut reference = Vec::new();
    for turn in &TURNS {
        let mut pcm: Vec<i16> = Vec::new();
        for (text, pause_ms) in turn.pieces {
            let spoken = tts.speak_all(text).expect("piper speaks");
            let last = spoken
                .chunks(160)
                .rposition(|c| c.iter().any(|s| s.unsigned_abs() > 300))
                .map_or(0, |i| (i + 1) * 160);
            pcm.extend(&spoken[..last.min(spoken.len())]);
            pcm.extend(vec![0; *pause_ms as usize * 8]);
        }
        let file = dir.join(format!("{}.wav", turn.name));
        let samples = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
        wav::write(
            &file,
            &wav::Audio {
                samples,
                sample_rate: 8000,
            },
        )
        .unwrap();
        script += &format!("  - wav: {}.wav\n", turn.name);
        reference.push(
            turn.pieces
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let path = dir.join("mix.yaml");
    std::fs::write(&path, script).unwrap();
    (path, reference)
}

/// What one level measured.
struct Level {
    callers: usize,
    latencies: Vec<u64>,
    errors: usize,
    words: usize,
    split: usize,
    offers: usize,
    cpu_per_caller: f64,
    /// Timed turns by what ended them: model/digits (early), silence, cap.
    early: usize,
    by_silence: usize,
}

fn run_level(server: &BenchServer, script: &Path, reference: &[String], n: usize) -> Level {
    server.take_lines();
    let offers_before = server.keypad_offers();
    let (cpu0, _) = cpu_ms_and_rss_kb(server.pid);
    let started = Instant::now();
    let reports = scripted_call_reports(VOXNAV, server.port, script, n);
    let wall = started.elapsed();
    let (cpu1, _) = cpu_ms_and_rss_kb(server.pid);
    std::thread::sleep(Duration::from_millis(500));
    let lines = server.take_lines();
    let decisions = records(&lines, "decision");
    let ended: Vec<String> = records(&lines, "latency")
        .iter()
        .map(|l| l["ended_by"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut level = Level {
        callers: n,
        latencies: Vec::new(),
        errors: 0,
        words: 0,
        split: 0,
        offers: server.keypad_offers() - offers_before,
        cpu_per_caller: (cpu1 - cpu0) as f64 / wall.as_millis() as f64 / n as f64,
        early: ended
            .iter()
            .filter(|e| *e == "model" || *e == "digits")
            .count(),
        by_silence: ended.iter().filter(|e| *e == "silence").count(),
    };
    for r in &reports {
        level.latencies.extend(
            r["voice_to_voice_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_u64()),
        );
        // The recognised words of this call's spoken turns, in order.
        let call = r["call"].as_str().unwrap_or_default();
        let heard: Vec<String> = decisions
            .iter()
            .filter(|d| d["call"] == call)
            .filter_map(|d| d["input"].as_str().map(str::to_string))
            .filter(|i| !i.starts_with('(') && !i.starts_with("#dtmf"))
            .collect();
        level.split += heard.len().saturating_sub(reference.len());
        let (e, w) = word_errors(&reference.join(" "), &heard.join(" "));
        level.errors += e;
        level.words += w;
    }
    level.latencies.sort_unstable();
    level
}

fn print(label: &str, l: &Level) {
    let p = |q| percentile(&l.latencies, q);
    println!(
        "{label:<14} {:>7} {:>6} {:>7} {:>7} {:>7} {:>6.1}% {:>6} {:>7} {:>8.1}% {:>6} {:>7}",
        l.callers,
        l.latencies.len(),
        p(0.5),
        p(0.95),
        l.latencies.last().copied().unwrap_or(0),
        100.0 * l.errors as f64 / l.words.max(1) as f64,
        l.split,
        l.offers,
        100.0 * l.cpu_per_caller,
        l.early,
        l.by_silence
    );
}

fn header() {
    println!(
        "{:<14} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7} {:>9} {:>6} {:>7}",
        "server",
        "callers",
        "turns",
        "p50 ms",
        "p95 ms",
        "max ms",
        "WER",
        "split",
        "keypad",
        "CPU/caller",
        "early",
        "silence"
    );
}

fn main() {
    // VOXNAV_BENCH_CALLERS=1,5 chooses the levels ("" for none); VOXNAV_BENCH_COMPARE=N the
    // level of the comparison.
    let levels: Vec<usize> = std::env::var("VOXNAV_BENCH_CALLERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 5, 10, 15, 20]);
    let dir = temp_dir("bench-live");
    let (script, reference) = prepare(&dir);
    let server = BenchServer::start(VOXNAV, &["--no-records"], &dir.join("server.err"));
    let (_, idle_rss) = cpu_ms_and_rss_kb(server.pid);
    println!(
        "live calls on loopback, {} cores; {} turns per caller (Piper voice through G.711); server idle RSS {:.0} MB",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        TURNS.len(),
        idle_rss as f64 / 1024.0
    );
    header();
    let mut holds = 0;
    for &n in &levels {
        let level = run_level(&server, &script, &reference, n);
        print("default", &level);
        if percentile(&level.latencies, 0.95) <= 1200 && level.offers == 0 && level.split == 0 {
            holds = holds.max(n);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    println!(
        "largest level with p95 <= 1.2 s, no keypad offers and no split turns: {holds} talking callers"
    );

    // Idle callers: on the line, silent (no-input reprompts from the prompt cache).
    let idle = dir.join("idle.yaml");
    std::fs::write(
        &idle,
        "turns:\n  - silence_ms: 20000\n  - hangup: true\n    after_ms: 0\n",
    )
    .unwrap();
    let (cpu0, _) = cpu_ms_and_rss_kb(server.pid);
    let started = Instant::now();
    let reports = scripted_call_reports(VOXNAV, server.port, &idle, 20);
    let (cpu1, _) = cpu_ms_and_rss_kb(server.pid);
    println!(
        "idle callers: {} on the line for 20 s: server CPU {:.2}% of a core per caller",
        reports.len(),
        100.0 * (cpu1 - cpu0) as f64 / started.elapsed().as_millis() as f64 / 20.0
    );
    drop(server);

    // The capacity changes in one run: one recognition at a time, two (the default), two with
    // overflow to Moonshine when one already waits, Moonshine alone.
    let compare = std::env::var("VOXNAV_BENCH_COMPARE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            levels
                .iter()
                .copied()
                .filter(|&n| n > 1)
                .min()
                .unwrap_or(5)
                .max(5)
        });
    println!("\ncapacity changes at {compare} callers (same run):");
    header();
    let configs: [(&str, &[&str]); 4] = [
        ("asr-jobs 1", &["--asr-jobs", "1"]),
        ("default", &[]),
        ("overflow 1", &["--asr-overflow", "1"]),
        ("moonshine", &["--asr-engine", "moonshine"]),
    ];
    for (i, (label, extra)) in configs.into_iter().enumerate() {
        let mut args = vec!["--no-records"];
        args.extend_from_slice(extra);
        let server = BenchServer::start(VOXNAV, &args, &dir.join(format!("server-{i}.err")));
        let level = run_level(&server, &script, &reference, compare);
        print(label, &level);
    }
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
