//! TTS benchmark: time to first audio, total time and real-time factor of the Piper pool on
//! hotline replies, per thread setting, plus memory of a loaded voice.
//!
//! `cargo bench --bench tts` (after `voxnav models install`). Prints medians; ratios are against
//! the reference run in the same process (1 job x 2 threads). "first/total" shows what clause
//! streaming buys: the caller hears the first clause after that fraction of the whole synthesis.

use std::ops::ControlFlow;

use voxnav::speech::{PiperConfig, PiperSynthesizer, Synthesizer};
use voxnav::testkit::{
    installed_models, median, peak_rss_mb, peak_rss_of_engine_in_fresh_process, rss_mb,
};

const REPLIES: [&str; 4] = [
    "How can I help you today?",
    "Thanks for calling. Your order 47219 has shipped, and it arrives tomorrow before 5:30 pm.",
    "Your refund of $12.50 is on its way. It usually takes 3 to 5 business days. Is there anything else?",
    "I can help with orders, deliveries, returns and refunds, payments and price protection. \
     You can also say agent at any time. What would you like to do?",
];
const RUNS: usize = 5;

struct Row {
    name: String,
    first_ms: f64,
    total_ms: f64,
    rtf: f64,
    first_over_total: f64,
    rss_mb: f64,
}

fn run(name: &str, threads: usize) -> Row {
    let paths = installed_models();
    let before = rss_mb();
    let tts = PiperSynthesizer::new(
        &paths,
        PiperConfig {
            threads_per_job: threads,
            ..Default::default()
        },
    )
    .expect("voice loads");
    tts.speak_all("Warm up.").expect("speaks");
    let (mut first, mut total, mut rtf, mut ratio) = (vec![], vec![], vec![], vec![]);
    for reply in REPLIES {
        for _ in 0..RUNS {
            let stats = tts
                .speak(reply, &mut |_| ControlFlow::Continue(()))
                .expect("speaks");
            first.push(stats.first_audio.as_secs_f64() * 1000.0);
            total.push(stats.total.as_secs_f64() * 1000.0);
            rtf.push(stats.total.as_secs_f64() / stats.audio.as_secs_f64());
            ratio.push(stats.first_audio.as_secs_f64() / stats.total.as_secs_f64());
        }
    }
    Row {
        name: name.into(),
        first_ms: median(first),
        total_ms: median(total),
        rtf: median(rtf),
        first_over_total: median(ratio),
        rss_mb: rss_mb() - before,
    }
}

/// Child mode for memory figures: load the voice, speak one reply, print peak RSS.
fn measure_engine() {
    let tts =
        PiperSynthesizer::new(&installed_models(), PiperConfig::default()).expect("voice loads");
    tts.speak_all(REPLIES[1]).expect("speaks");
    println!("{:.0}", peak_rss_mb());
}

fn main() {
    if std::env::var("VOXNAV_BENCH_ENGINE").is_ok() {
        return measure_engine();
    }
    let peak = peak_rss_of_engine_in_fresh_process("piper");
    let peak = peak.map_or("n/a".to_string(), |mb| format!("{mb:.0}"));
    println!("peak RSS, fresh process, piper voice loaded + one reply: {peak} MB");
    println!(
        "{} replies x {RUNS} runs, Piper en_US-joe-medium -> 8 kHz",
        REPLIES.len()
    );
    let reference = run("1 job x 2 threads (reference)", 2);
    let one = run("1 job x 1 thread", 1);
    println!(
        "\n{:<32} {:>14} {:>9} {:>7} {:>12} {:>9} {:>8}",
        "setting", "first audio ms", "total ms", "RTF", "first/total", "vs ref", "RSS +MB"
    );
    for r in [&reference, &one] {
        println!(
            "{:<32} {:>14.0} {:>9.0} {:>7.3} {:>12.2} {:>8.2}x {:>8.0}",
            r.name,
            r.first_ms,
            r.total_ms,
            r.rtf,
            r.first_over_total,
            r.first_ms / reference.first_ms,
            r.rss_mb
        );
    }
}
