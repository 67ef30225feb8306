//! `voxnav call`: the scripted test caller (`call::caller`), and the transcript of what the
//! bot said, recognised after the call.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use voxnav::media::wav;
use voxnav::models::ModelPaths;
use voxnav::speech::{
    PiperConfig, RecognizeOptions, Recognizer, WhisperConfig, WhisperRecognizer, tts::OUTPUT_RATE,
};

#[derive(Args)]
pub struct CallArgs {
    /// e.g. sip:ivr@127.0.0.1:5060
    target: String,
    /// The call script (YAML; see sip-test/calls/).
    #[arg(long)]
    script: PathBuf,
    /// Write the bot's side of the call to this WAV file (8 kHz).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Do not transcribe the bot (latency figures only, no Whisper load).
    #[arg(long)]
    no_transcribe: bool,
    /// Print the result as one JSON object (`voxnav call {...}`).
    #[arg(long)]
    json: bool,
    /// The caller's number or user (the From URI's user part).
    #[arg(long, default_value = "voxnav-caller")]
    from: String,
    /// The voice the script's lines are spoken with: the Piper voice, or `espeak:NAME`
    /// (`espeak:cmn-latn-pinyin` for a Mandarin caller).
    #[arg(long, default_value = voxnav::dialplan::load::DEFAULT_VOICE)]
    voice: String,
    /// The language the bot is transcribed in ("en", "zh").
    #[arg(long, default_value = "en")]
    language: String,
    /// Answer a digest challenge as this SIP user (an agent's phone dialling a feature code:
    /// `voxnav call 'sip:*2@HOST' --auth-user alice`); the password is read from the
    /// `VOXNAV_CALL_PASSWORD` environment variable, kept out of the process list.
    #[arg(long)]
    auth_user: Option<String>,
}

/// Places the scripted call, then transcribes the bot's replies.
pub fn run(paths: &ModelPaths, args: CallArgs) -> Result<()> {
    let (target, script_path, record_to, transcribe_bot, json) = (
        args.target.as_str(),
        args.script.as_path(),
        args.record.as_deref(),
        !args.no_transcribe,
        args.json,
    );
    use voxnav::call::caller::{self, CallerInput};
    let script = caller::read_script(script_path).map_err(anyhow::Error::msg)?;
    let needs_voice = script
        .iter()
        .any(|t| matches!(t.input, CallerInput::Say(_)));
    // One thread: the caller usually shares the machine with the server it calls.
    let tts = if needs_voice {
        Some(voxnav::speech::synthesizer_for(
            paths,
            &args.voice,
            PiperConfig::default(),
            None,
        )?)
    } else {
        None
    };
    let speak = |text: &str| -> std::result::Result<Vec<i16>, String> {
        tts.as_ref()
            .ok_or_else(|| "no voice loaded".to_string())?
            .speak_all(text)
            .map_err(|e| e.to_string())
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let credentials = match &args.auth_user {
        Some(user) => Some(voxnav::sip::uac::Credentials {
            user: user.clone(),
            password: std::env::var("VOXNAV_CALL_PASSWORD")
                .context("--auth-user needs the password in VOXNAV_CALL_PASSWORD")?,
        }),
        None => None,
    };
    let record = runtime.block_on(caller::run(
        target,
        &args.from,
        credentials,
        &script,
        &speak,
    ));
    if let Some(path) = record_to {
        let samples = record
            .bot_audio
            .iter()
            .map(|&s| s as f32 / 32_768.0)
            .collect();
        wav::write(
            path,
            &wav::Audio {
                samples,
                sample_rate: OUTPUT_RATE,
            },
        )?;
    }
    // The bot's words per reply, recognised after the call (2 threads: the call is over).
    let mut bot_texts = Vec::new();
    if transcribe_bot && !record.bot_audio.is_empty() {
        let asr = WhisperRecognizer::new(
            paths,
            WhisperConfig {
                threads_per_job: 2,
                language: args.language.clone(),
                ..Default::default()
            },
        )?;
        for (from, to) in caller::bot_segments(&record) {
            let audio: Vec<f32> = record.bot_audio[from..to]
                .iter()
                .map(|&s| s as f32 / 32_768.0)
                .collect();
            let voiced = audio
                .chunks(160)
                .filter(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt() > 0.01);
            let text = if voiced.count() < 15 {
                String::new()
            } else {
                asr.recognize(&audio, 8000, &RecognizeOptions::default())
                    .map(|t| t.text)
                    .unwrap_or_else(|e| format!("(not recognised: {e})"))
            };
            bot_texts.push(((from / 8) as u64, text));
        }
    }
    let latencies: Vec<u64> = record
        .turns
        .iter()
        .filter_map(|t| t.voice_to_voice.map(|d| d.as_millis() as u64))
        .collect();
    let describe = |input: &CallerInput| match input {
        CallerInput::Say(t) => format!("say {t:?}"),
        CallerInput::Wav(p) => format!("wav {}", p.display()),
        CallerInput::Dtmf(d) => format!("dtmf {d}"),
        CallerInput::Silence(d) => format!("silence {} ms", d.as_millis()),
        CallerInput::Hangup => "hang up".into(),
    };
    if json {
        let turns: Vec<serde_json::Value> = record
            .turns
            .iter()
            .map(|t| {
                serde_json::json!({
                    "input": describe(&t.input),
                    "started_ms": t.started.as_millis() as u64,
                    "ended_ms": t.ended.as_millis() as u64,
                    "voice_to_voice_ms": t.voice_to_voice.map(|d| d.as_millis() as u64),
                    "talked_over_ms": t.talked_over.map(|d| d.as_millis() as u64),
                })
            })
            .collect();
        let bot: Vec<serde_json::Value> = bot_texts
            .iter()
            .map(|(at, text)| serde_json::json!({"from_ms": at, "text": text}))
            .collect();
        let out = serde_json::json!({
            "target": target,
            "call": record.call_id,
            "answered_ms": record.answered_after.map(|d| d.as_millis() as u64),
            "failure": record.failure,
            "ended": record.ended,
            "turns": turns,
            "bot": bot,
            "voice_to_voice_ms": latencies,
        });
        println!("voxnav call {out}");
    } else {
        match record.answered_after {
            Some(d) => println!("answered after {} ms", d.as_millis()),
            None => println!(
                "not answered: {}",
                record.failure.as_deref().unwrap_or("no reason given")
            ),
        }
        // Interleave the bot's replies and the caller's turns on the call's timeline.
        let mut lines: Vec<(u64, String)> = bot_texts
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(at, t)| (*at, format!("bot     {t}")))
            .collect();
        for t in &record.turns {
            let latency = t
                .voice_to_voice
                .map(|d| format!("  [bot answered after {} ms]", d.as_millis()))
                .unwrap_or_default();
            lines.push((
                t.started.as_millis() as u64,
                format!("caller  {}{latency}", describe(&t.input)),
            ));
        }
        lines.sort_by_key(|(at, _)| *at);
        for (at, line) in lines {
            println!("{:>7.1} s  {line}", at as f64 / 1000.0);
        }
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        if !sorted.is_empty() {
            println!(
                "voice-to-voice: median {} ms, max {} ms over {} turns",
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1],
                sorted.len()
            );
        }
        println!("ended: {}", record.ended);
    }
    if record.answered_after.is_none() {
        anyhow::bail!("the call was not answered");
    }
    Ok(())
}
