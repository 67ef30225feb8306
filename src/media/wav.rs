//! Mono PCM WAV files for the command-line tools and tests: 16-bit integer or 32-bit float in,
//! mono f32 samples out; 16-bit out.

use std::path::Path;

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file is missing, unreadable, or not a WAV file.
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
    /// A valid WAV file in a layout voxnav does not take.
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
    /// Writing failed.
    #[error("{path}: {detail}")]
    Write { path: String, detail: String },
}

/// Mono audio: samples in [-1, 1] at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Reads a mono WAV (16-bit PCM or 32-bit float). Stereo is refused rather than guessed at.
pub fn read(path: &Path) -> Result<Audio, WavError> {
    let shown = path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|e| WavError::Read {
        path: shown.clone(),
        detail: match e {
            hound::Error::IoError(io) => io.to_string(),
            other => format!("not a readable WAV file ({other})"),
        },
    })?;
    let spec = reader.spec();
    let format = |detail: String| WavError::Format {
        path: shown.clone(),
        detail,
    };
    if spec.channels != 1 {
        return Err(format(format!(
            "{} channels; voxnav takes mono audio (sox in.wav -c 1 out.wav)",
            spec.channels
        )));
    }
    let samples: Result<Vec<f32>, hound::Error> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader
            .into_samples::<i16>()
            .map(|s| s.map(|v| v as f32 / 32_768.0))
            .collect(),
        (hound::SampleFormat::Float, 32) => reader.into_samples::<f32>().collect(),
        (f, bits) => {
            return Err(format(format!(
                "{bits}-bit {f:?} samples; voxnav takes 16-bit PCM or 32-bit float"
            )));
        }
    };
    let samples = samples.map_err(|e| format(format!("damaged sample data ({e})")))?;
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Writes mono 16-bit PCM, clipping to the valid range.
pub fn write(path: &Path, audio: &Audio) -> Result<(), WavError> {
    let err = |e: hound::Error| WavError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in &audio.samples {
        w.write_sample(f32_to_i16(s)).map_err(err)?;
    }
    w.finalize().map_err(err)
}

/// Converts a [-1, 1] sample to 16-bit PCM, clipping.
pub fn f32_to_i16(s: f32) -> i16 {
    (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}
