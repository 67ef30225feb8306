//! Turn decisions on live calls (the default detector), each sound in the product voice or
//! synthesised, through G.711, 1.5 s into the greeting:
//! - backchannels, coughs and noise bursts: how many interrupted the prompt (target 0), how
//!   many held it and let it resume;
//! - real questions: how long the bot kept talking after the caller began (caller side), and
//!   whether they were answered.
//!
//! `cargo bench --bench turn_taking` (about 4 minutes). Ending turns early (complete turns,
//! digits, hesitations) is measured by `benches/live_calls.rs` ("early" / "silence" columns,
//! split turns) and `tests/turn_models.rs` (cut-off requests never ended early).

use std::path::Path;

use voxnav::media::wav;
use voxnav::speech::{PiperConfig, PiperSynthesizer, Synthesizer};
use voxnav::testkit::{BenchServer, installed_models, records, scripted_call, temp_dir};

const VOXNAV: &str = env!("CARGO_BIN_EXE_voxnav");

fn write(dir: &Path, name: &str, pcm: &[i16]) {
    let samples = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
    wav::write(
        &dir.join(format!("{name}.wav")),
        &wav::Audio {
            samples,
            sample_rate: 8000,
        },
    )
    .unwrap();
}

/// Shaped noise: `bursts` bursts of `ms` with a sharp attack and fast decay (a cough), or a
/// flat one (a door, a rustle).
fn burst(bursts: usize, ms: usize, decay: bool, seed: u32) -> Vec<i16> {
    let mut seed = seed;
    let mut out = Vec::new();
    for _ in 0..bursts {
        for i in 0..8 * ms {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let white = (seed >> 16) as f32 / 32_768.0 - 1.0;
            let envelope = if decay {
                (-(i as f32) / (8.0 * 50.0)).exp()
            } else {
                0.5
            };
            out.push((white * envelope * 12_000.0) as i16);
        }
        out.extend(vec![0; 8 * 120]);
    }
    out
}

fn main() {
    let dir = temp_dir("bench-turns");
    let tts = PiperSynthesizer::new(
        &installed_models(),
        PiperConfig {
            noise_scale: Some(0.0),
            noise_w: Some(0.0),
            ..Default::default()
        },
    )
    .expect("piper");
    let said = |t: &str| tts.speak_all(t).expect("piper speaks");
    let not_turns: Vec<(&str, Vec<i16>)> = vec![
        ("uh-huh", said("Uh-huh.")),
        ("mm-hmm", said("Mm-hmm.")),
        ("okay", said("Okay.")),
        ("yeah", said("Yeah.")),
        ("right", said("Right.")),
        ("cough", burst(2, 180, true, 7)),
        ("cough 2", burst(1, 250, true, 99)),
        ("noise burst", burst(1, 400, false, 3)),
    ];
    let questions: Vec<(&str, Vec<i16>)> = vec![
        ("hours", said("What are your opening hours?")),
        ("track", said("I want to track my order.")),
        ("human", said("Can I talk to a person?")),
    ];
    let server = BenchServer::start(VOXNAV, &["--no-records"], &dir.join("server.err"));
    let run = |pcm: &[i16]| -> (serde_json::Value, Vec<String>) {
        write(&dir, "sound", pcm);
        let script = dir.join("s.yaml");
        std::fs::write(
            &script,
            "turns:\n  - wav: sound.wav\n    at_ms: 1500\n  - hangup: true\n",
        )
        .unwrap();
        server.take_lines();
        let report = scripted_call(VOXNAV, server.port, &script);
        std::thread::sleep(std::time::Duration::from_millis(500));
        (report, server.take_lines())
    };
    println!("over the greeting, 1.5 s in (one call each):");
    println!("{:<14} {:>11} {:>8}", "sound", "interrupted", "resumed");
    let mut false_barge_ins = 0;
    for (name, pcm) in &not_turns {
        let (_, lines) = run(pcm);
        let b = records(&lines, "barge-in");
        let interrupted = b.iter().filter(|b| b["resumed"] == false).count();
        let resumed = b.iter().filter(|b| b["resumed"] == true).count();
        false_barge_ins += interrupted;
        println!("{name:<14} {interrupted:>11} {resumed:>8}");
    }
    println!(
        "false barge-ins: {false_barge_ins} of {} sounds",
        not_turns.len()
    );
    println!(
        "\n{:<14} {:>16} {:>9}",
        "question", "bot stopped after", "answered"
    );
    for (name, pcm) in &questions {
        let (report, lines) = run(pcm);
        let talked_over = report["turns"][0]["talked_over_ms"].as_u64();
        let answered = records(&lines, "decision").len() > 1;
        println!(
            "{name:<14} {:>14} ms {:>9}",
            talked_over.map_or("-".into(), |t| t.to_string()),
            answered
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
