//! `voxnav say`, `transcribe` and `demo`: the speech engines on their own.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use voxnav::media::{resample::resample, wav};
use voxnav::models::{ModelPaths, paths::WhisperModel};
use voxnav::speech::{
    PiperConfig, PiperSynthesizer, RecognizeOptions, Recognizer, Synthesizer, WhisperConfig,
    WhisperRecognizer, tts::OUTPUT_RATE,
};

#[derive(Args)]
pub struct SayArgs {
    text: String,
    #[arg(short, long)]
    output: PathBuf,
    /// The Piper voice, or `espeak:NAME` (`espeak:cmn-latn-pinyin`: Mandarin).
    #[arg(long, default_value = voxnav::dialplan::load::DEFAULT_VOICE)]
    voice: String,
}

#[derive(Args)]
pub struct TranscribeArgs {
    input: PathBuf,
    /// tiny.en or base.
    #[arg(long, default_value = "base")]
    model: WhisperModel,
    /// Beam width; 1 = greedy.
    #[arg(long, default_value_t = 5)]
    beam: u32,
    /// Language code, pinned ("en", or "zh" with base).
    #[arg(long, default_value = "en")]
    language: String,
    /// Domain words to bias recognition.
    #[arg(long)]
    prompt: Option<String>,
    /// Threads for the one job.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
}

pub fn say(paths: &ModelPaths, args: SayArgs) -> Result<()> {
    let (text, output) = (args.text.as_str(), args.output.as_path());
    if text.trim().is_empty() {
        anyhow::bail!("nothing to say: the text is empty");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tts = voxnav::speech::synthesizer_for(
        paths,
        &args.voice,
        PiperConfig {
            threads_per_job: threads,
            ..Default::default()
        },
        None,
    )?;
    let (pcm, stats) = tts.speak_with_stats(text)?;
    let samples = pcm.iter().map(|&s| s as f32 / 32_768.0).collect();
    wav::write(
        output,
        &wav::Audio {
            samples,
            sample_rate: OUTPUT_RATE,
        },
    )?;
    println!(
        "wrote {}: {:.2} s of 8 kHz audio in {} clauses; first audio {} ms, total {} ms",
        output.display(),
        stats.audio.as_secs_f64(),
        stats.clauses,
        stats.first_audio.as_millis(),
        stats.total.as_millis()
    );
    Ok(())
}

pub fn transcribe(paths: &ModelPaths, args: TranscribeArgs) -> Result<()> {
    let config = WhisperConfig {
        model: args.model,
        beam_size: args.beam,
        language: args.language,
        prompt: args.prompt,
        threads_per_job: args.threads,
        ..Default::default()
    };
    let input = args.input.as_path();
    let audio = wav::read(input)?;
    if audio.samples.is_empty() {
        anyhow::bail!("{}: the audio is empty", input.display());
    }
    // The recognizer takes 8 or 16 kHz; anything else is converted first.
    let (samples, rate) = match audio.sample_rate {
        8_000 | 16_000 => (audio.samples, audio.sample_rate),
        other => (resample(&audio.samples, other, 16_000)?, 16_000),
    };
    let asr = WhisperRecognizer::new(paths, config)?;
    let t = asr.recognize(&samples, rate, &RecognizeOptions::default())?;
    println!("{}", t.text);
    eprintln!(
        "{}: {:.2} s audio, {} ms processing (RTF {:.3}), confidence {:.2}",
        asr.describe(),
        t.timings.audio.as_secs_f64(),
        t.timings.processing.as_millis(),
        t.timings.real_time_factor(),
        t.confidence
    );
    for seg in &t.segments {
        eprintln!(
            "  [{:>6.2} -> {:>6.2}] {}",
            seg.start.as_secs_f64(),
            seg.end.as_secs_f64(),
            seg.text
        );
    }
    Ok(())
}

/// Replies of the demo hotline, chosen to show number reading (order numbers digit by digit,
/// amounts and times naturally).
const DEMO_REPLIES: [&str; 3] = [
    "Thanks for calling the voxnav demo store. How can I help you today?",
    "Your order 47219 has shipped, and it arrives tomorrow before 5:30 pm.",
    "Your refund of $12.50 is on its way. Is there anything else I can help you with?",
];

pub fn demo(paths: &ModelPaths, args: DemoArgs) -> Result<()> {
    let out = args.out.as_path();
    use voxnav::media::g711::Law;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tts = PiperSynthesizer::new(paths, PiperConfig::default())?;
    let asr = WhisperRecognizer::new(
        paths,
        WhisperConfig {
            threads_per_job: cores,
            ..Default::default()
        },
    )?;
    println!(
        "voxnav speech demo: {} | {}",
        tts.describe(),
        asr.describe()
    );
    for (i, reply) in DEMO_REPLIES.iter().enumerate() {
        let (pcm, stats) = tts.speak_with_stats(reply)?;
        // What a caller hears: the reply encoded as PCMU and decoded again.
        let heard: Vec<f32> = Law::Ulaw
            .decode(&Law::Ulaw.encode(&pcm))
            .iter()
            .map(|&s| s as f32 / 32_768.0)
            .collect();
        let file = out.join(format!("reply-{}.wav", i + 1));
        wav::write(
            &file,
            &wav::Audio {
                samples: heard.clone(),
                sample_rate: OUTPUT_RATE,
            },
        )?;
        let t = asr.recognize(&heard, OUTPUT_RATE, &RecognizeOptions::default())?;
        println!("\nbot says:   {reply}");
        println!(
            "  audio:    {} ({:.1} s, first audio after {} ms, synthesis {} ms)",
            file.display(),
            stats.audio.as_secs_f64(),
            stats.first_audio.as_millis(),
            stats.total.as_millis()
        );
        println!(
            "  heard as: {} (whisper {} ms, confidence {:.2})",
            t.text,
            t.timings.processing.as_millis(),
            t.confidence
        );
    }
    println!("\nTry your own: voxnav say \"TEXT\" -o out.wav && voxnav transcribe out.wav");
    Ok(())
}
