//! ASR benchmark: latency, real-time factor and word error rate of Whisper per model and decoding
//! setting on 2-4 s telephone-band utterances (espeak-ng speech through G.711 mu-law), plus memory.
//!
//! `cargo bench --bench asr` (after `voxnav models install`). Prints medians, and ratios against a
//! reference run in the same process: base, beam 5, full 30 s window (no audio_ctx trim).

use std::time::Duration;

use voxnav::media::wav;
use voxnav::models::paths::WhisperModel;
use voxnav::speech::{
    MoonshineRecognizer, RecognizeOptions, Recognizer, WhisperConfig, WhisperRecognizer,
};
use voxnav::testkit::{
    espeak_wav_voice, installed_models, median, peak_rss_mb, peak_rss_of_engine_in_fresh_process,
    rss_mb, telephone, temp_dir, word_errors,
};

const SENTENCES: [&str; 16] = [
    "I want to check the status of my order.",
    "My order number is 5 8 3 6 2.",
    "Where is my package? It should have arrived.",
    "I was charged twice for the same order.",
    "Can you change my delivery address?",
    "Let me speak to a real person.",
    "I would like a refund for the blue jacket.",
    "The price dropped after I bought it.",
    "Please cancel my order.",
    "The delivery driver left the box at the wrong house.",
    "How long does shipping take?",
    "My payment did not go through.",
    "The order number is 7 1 4 0 9.",
    "I want to return these shoes.",
    "What are your opening hours?",
    "Is there a warranty on this laptop?",
];
/// Two espeak-ng voices, so the figures are not one voice's quirks.
const VOICES: [&str; 2] = ["en-us", "en-us+m3"];
const PROMPT: &str = "Customer service call about an order, delivery, refund, return, payment or price. \
Order numbers are read digit by digit.";
const REPEATS: usize = 1;

struct Row {
    name: String,
    median_ms: f64,
    p90_ms: f64,
    rtf: f64,
    wer: f64,
    rss_mb: f64,
}

fn run(name: &str, config: WhisperConfig, audio: &[Vec<f32>], repeats: usize) -> Row {
    run_engine(
        name,
        || Box::new(WhisperRecognizer::new(&installed_models(), config).expect("model loads")),
        audio,
        repeats,
    )
}

fn run_engine(
    name: &str,
    load: impl FnOnce() -> Box<dyn Recognizer>,
    audio: &[Vec<f32>],
    repeats: usize,
) -> Row {
    let before = rss_mb();
    let asr = load();
    let (mut times, mut rtfs, mut errors, mut words) = (Vec::new(), Vec::new(), 0, 0);
    let texts = VOICES.iter().flat_map(|_| SENTENCES.iter());
    for (text, pcm) in texts.zip(audio) {
        for r in 0..repeats {
            let t = asr
                .recognize(pcm, 8_000, &RecognizeOptions::default())
                .expect("recognises");
            times.push(t.timings.processing.as_secs_f64() * 1000.0);
            rtfs.push(t.timings.real_time_factor());
            if r == 0 {
                let (e, n) = word_errors(text, &t.text);
                errors += e;
                words += n;
            }
        }
    }
    let rss = rss_mb() - before;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Row {
        name: name.into(),
        median_ms: median(times),
        p90_ms: sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)],
        rtf: median(rtfs),
        wer: errors as f64 / words as f64,
        rss_mb: rss,
    }
}

/// Child mode for memory figures: load one model, recognise one utterance, print peak RSS.
fn measure_engine(model: &str) {
    let model: WhisperModel = model.parse().expect("model name");
    let asr = WhisperRecognizer::new(
        &installed_models(),
        WhisperConfig {
            model,
            ..Default::default()
        },
    )
    .expect("model loads");
    let speech = vec![0.1f32; 8_000 * 3];
    asr.recognize(&speech, 8_000, &RecognizeOptions::default())
        .expect("recognises");
    println!("{:.0}", peak_rss_mb());
}

/// The options that shorten a recognition, each against the default in one run
/// (`VOXNAV_BENCH_ASR=latency cargo bench --bench asr`).
fn latency_options(audio: &[Vec<f32>]) {
    let base = WhisperConfig::default;
    let two = |c: WhisperConfig| WhisperConfig {
        threads_per_job: 2,
        ..c
    };
    let rows = [
        ("default (base beam5 margin 150) 2t", two(base())),
        (
            "q8_0 weights 2t",
            two(WhisperConfig {
                q8_0: true,
                ..base()
            }),
        ),
        (
            "flash attention 2t",
            two(WhisperConfig {
                flash_attn: true,
                ..base()
            }),
        ),
        (
            "beam 3 2t",
            two(WhisperConfig {
                beam_size: 3,
                ..base()
            }),
        ),
        (
            "beam 2 2t",
            two(WhisperConfig {
                beam_size: 2,
                ..base()
            }),
        ),
        (
            "margin 100 2t",
            two(WhisperConfig {
                audio_ctx_margin: 100,
                ..base()
            }),
        ),
        (
            "margin 50 2t",
            two(WhisperConfig {
                audio_ctx_margin: 50,
                ..base()
            }),
        ),
        ("default 1t", base()),
        (
            "q8_0 weights 1t",
            WhisperConfig {
                q8_0: true,
                ..base()
            },
        ),
    ];
    // VOXNAV_BENCH_ASR=q8_0: only the default against 8-bit weights.
    // VOXNAV_BENCH_ASR=moonshine: only the default against Moonshine.
    let only = |prefix: &'static str| {
        move |(n, _): &(&str, WhisperConfig)| n.starts_with("default") || n.starts_with(prefix)
    };
    let rows: Vec<_> = if std::env::var("VOXNAV_BENCH_ASR").as_deref() == Ok("q8_0") {
        rows.into_iter().filter(only("q8_0")).collect()
    } else if std::env::var("VOXNAV_BENCH_ASR").as_deref() == Ok("moonshine") {
        rows.into_iter().filter(only("moonshine")).collect()
    } else {
        rows.into_iter().collect()
    };
    let reference = run(rows[0].0, rows[0].1.clone(), audio, 1);
    println!(
        "\n{:<40} {:>9} {:>8} {:>6} {:>9}",
        "setting", "median ms", "p90 ms", "WER", "vs ref"
    );
    let print = |r: &Row| {
        println!(
            "{:<40} {:>9.0} {:>8.0} {:>5.1}% {:>8.2}x",
            r.name,
            r.median_ms,
            r.p90_ms,
            100.0 * r.wer,
            r.median_ms / reference.median_ms
        )
    };
    print(&reference);
    for (name, config) in rows.into_iter().skip(1) {
        print(&run(name, config, audio, 1));
    }
    print(&run_engine(
        "moonshine base greedy 1t",
        || Box::new(MoonshineRecognizer::new(&installed_models(), 1, 32).expect("moonshine loads")),
        audio,
        1,
    ));
}

fn main() {
    if let Ok(engine) = std::env::var("VOXNAV_BENCH_ENGINE") {
        return measure_engine(&engine);
    }
    for model in WhisperModel::ALL {
        let peak = peak_rss_of_engine_in_fresh_process(model.name());
        let peak = peak.map_or("n/a".to_string(), |mb| format!("{mb:.0}"));
        println!("peak RSS, fresh process, {model} loaded + one 3 s utterance: {peak} MB");
    }
    let dir = temp_dir("bench-asr");
    let audio: Vec<Vec<f32>> = VOICES
        .iter()
        .flat_map(|v| SENTENCES.iter().map(move |s| (v, s)))
        .enumerate()
        .map(|(i, (voice, u))| {
            let a =
                wav::read(&espeak_wav_voice(u, voice, 8_000, &dir, &format!("u{i}"))).expect("wav");
            let pcm: Vec<i16> = a.samples.iter().map(|&s| wav::f32_to_i16(s)).collect();
            telephone(&pcm)
        })
        .collect();
    let secs: Vec<f64> = audio.iter().map(|a| a.len() as f64 / 8000.0).collect();
    println!(
        "{} utterances ({} voices), {:.2}-{:.2} s, espeak-ng through G.711 mu-law; {} run(s) each",
        audio.len(),
        VOICES.len(),
        secs.iter().copied().fold(f64::MAX, f64::min),
        secs.iter().copied().fold(0.0, f64::max),
        REPEATS
    );
    let cfg = |model, beam, threads, prompt: bool, trim| WhisperConfig {
        model,
        beam_size: beam,
        threads_per_job: threads,
        prompt: prompt.then(|| PROMPT.to_string()),
        trim_audio_ctx: trim,
        ..Default::default()
    };
    let margin = |model, margin| WhisperConfig {
        audio_ctx_margin: margin,
        ..cfg(model, 5, 2, false, true)
    };
    use WhisperModel::{Base, TinyEn};
    if matches!(
        std::env::var("VOXNAV_BENCH_ASR").as_deref(),
        Ok("latency") | Ok("q8_0") | Ok("moonshine")
    ) {
        return latency_options(&audio);
    }
    let reference = run(
        "base beam5 2t full-30s-window (reference)",
        cfg(Base, 5, 2, false, false),
        &audio,
        1,
    );
    let rows = vec![
        run(
            "tiny.en greedy 2t",
            cfg(TinyEn, 1, 2, false, true),
            &audio,
            REPEATS,
        ),
        run(
            "tiny.en beam5 2t",
            cfg(TinyEn, 5, 2, false, true),
            &audio,
            REPEATS,
        ),
        run(
            "tiny.en beam5 2t margin 150",
            margin(TinyEn, 150),
            &audio,
            REPEATS,
        ),
        run(
            "tiny.en beam5 2t prompt",
            cfg(TinyEn, 5, 2, true, true),
            &audio,
            REPEATS,
        ),
        run(
            "base greedy 2t",
            cfg(Base, 1, 2, false, true),
            &audio,
            REPEATS,
        ),
        run(
            "base beam5 2t",
            cfg(Base, 5, 2, false, true),
            &audio,
            REPEATS,
        ),
        run(
            "base beam5 2t margin 150",
            margin(Base, 150),
            &audio,
            REPEATS,
        ),
        run(
            "base beam5 2t margin 300",
            margin(Base, 300),
            &audio,
            REPEATS,
        ),
        run(
            "base beam5 2t prompt",
            cfg(Base, 5, 2, true, true),
            &audio,
            REPEATS,
        ),
        run(
            "base beam5 1t",
            cfg(Base, 5, 1, false, true),
            &audio,
            REPEATS,
        ),
    ];
    println!(
        "\n{:<44} {:>9} {:>8} {:>7} {:>6} {:>9} {:>8}",
        "setting", "median ms", "p90 ms", "RTF", "WER", "vs ref", "RSS +MB"
    );
    for r in std::iter::once(&reference).chain(&rows) {
        println!(
            "{:<44} {:>9.0} {:>8.0} {:>7.3} {:>5.1}% {:>8.2}x {:>8.0}",
            r.name,
            r.median_ms,
            r.p90_ms,
            r.rtf,
            100.0 * r.wer,
            r.median_ms / reference.median_ms,
            r.rss_mb
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    std::thread::sleep(Duration::from_millis(10));
}
