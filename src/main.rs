//! The voxnav command line: the parser, and one module per command in `commands/`.

mod commands;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use voxnav::models::ModelPaths;

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
    /// Run the SIP server: with a dialplan it answers calls by voice; without one, the
    /// built-in test behaviour (beeps, digit echo) answers.
    Serve(Box<commands::serve::ServeArgs>),
    /// A scripted test caller: dial a SIP URI, play the script's caller turns (text spoken
    /// with the product voice, WAV files, keypad digits, silences, barge-in), record and
    /// transcribe what the bot says, print the transcript with each turn's voice-to-voice
    /// latency (last voiced caller packet -> first voiced bot packet).
    Call(commands::call::CallArgs),
    /// Speak text with the product voice into an 8 kHz WAV file.
    Say(commands::speech::SayArgs),
    /// Transcribe a mono WAV file (any rate; 8 kHz telephone audio is the normal case).
    Transcribe(commands::speech::TranscribeArgs),
    /// The speech demo: the bot speaks hotline replies, they cross a G.711 telephone channel, and
    /// Whisper transcribes what a caller would hear. Writes the audio to --out.
    Demo(commands::speech::DemoArgs),
    /// Install or convert speech models.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Check dialplans (a file, or every *.yaml in a folder): syntax and semantics, every
    /// problem as file:line:col with a hint. Exit 1 if any is refused.
    Check { path: PathBuf },
    /// Talk to a hotline in text. Lines are what the caller says; `#dtmf 1234`, `#silence`
    /// and `#hangup` are the other inputs. With --json: one JSON object per bot turn.
    Simulate(commands::dialplan::SimulateArgs),
    /// Run the scripted conversations (*.tests.yaml) under a path; report failures and the
    /// nodes and branches no test reaches. Exit 1 if any test fails.
    Test(commands::dialplan::TestArgs),
    /// The `sip:` lines of an agent's entry in the agents file: the digest hashes of the
    /// password read from standard input (one line; never an argument, which would stay in
    /// the shell's history and the process list).
    AgentPassword {
        /// The agent id (the SIP user name the phone registers as).
        id: String,
        /// The digest realm (the agents file's `realm`).
        #[arg(long, default_value = voxnav::agents::DEFAULT_REALM)]
        realm: String,
    },
    /// Run the demo order service alone (GET /orders/NUMBER -> JSON).
    DemoOrders {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let paths = cli.models_dir.map(ModelPaths::new).unwrap_or_default();
    match cli.command {
        Command::Serve(args) => commands::serve::run(&paths, *args),
        Command::Call(args) => commands::call::run(&paths, args),
        Command::Say(args) => commands::speech::say(&paths, args),
        Command::Transcribe(args) => commands::speech::transcribe(&paths, args),
        Command::Demo(args) => commands::speech::demo(&paths, args),
        Command::Models(command) => commands::models::run(&paths, command),
        Command::Check { path } => {
            if !voxnav::dialplan::cli::check(&path) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Simulate(args) => commands::dialplan::simulate(&paths, args),
        Command::Test(args) => commands::dialplan::test(&paths, args),
        Command::AgentPassword { id, realm } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("give the password on standard input");
            }
            print!("{}", voxnav::agents::hash_lines(&id, &realm, password));
            Ok(())
        }
        Command::DemoOrders { listen } => commands::dialplan::demo_orders(&listen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option of `serve` parses into its type (clap checks types only when parsing).
    #[test]
    fn serve_options_parse() {
        let cli = Cli::try_parse_from([
            "voxnav",
            "serve",
            "--asr-jobs",
            "1",
            "--asr-engine",
            "moonshine",
            "--asr-overflow",
            "2",
            "--media-threads",
            "2",
        ]);
        assert!(matches!(cli.map(|c| c.command), Ok(Command::Serve(_))));
        for bad in [["--asr-overflow", "0"], ["--asr-engine", "kaldi"]] {
            let args = ["voxnav", "serve", bad[0], bad[1]];
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
        assert!(Cli::try_parse_from(["voxnav", "serve", "--asr-overflow", "off"]).is_ok());
    }
}
