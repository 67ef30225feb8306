//! Band-limited sample-rate conversion (rubato's FFT resampler) for whole buffers:
//! 8 kHz telephone audio up to Whisper's 16 kHz, Piper's 22.05 kHz down to 8 kHz.
//! Decimating instead would alias everything above 4 kHz back into the voice band.

use rubato::{FftFixedIn, Resampler};

/// Why a buffer could not be resampled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// A rate of zero or a ratio rubato cannot build.
    #[error("cannot resample {from} Hz -> {to} Hz: {detail}")]
    Unsupported { from: u32, to: u32, detail: String },
}

/// Input frames handed to the FFT resampler per call.
const CHUNK: usize = 1024;

/// Resamples mono `input` from `from` Hz to `to` Hz. The output has `round(len * to / from)`
/// samples, aligned with the input (the resampler's delay is removed).
pub fn resample(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let unsupported = |detail: String| ResampleError::Unsupported { from, to, detail };
    if from == 0 || to == 0 {
        return Err(unsupported("rates must be positive".into()));
    }
    if from == to || input.is_empty() {
        return Ok(input.to_vec());
    }
    let mut rs = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
        .map_err(|e| unsupported(e.to_string()))?;
    let delay = rs.output_delay();
    let wanted = ((input.len() as u64 * to as u64 + from as u64 / 2) / from as u64) as usize;
    let mut out = Vec::with_capacity(wanted + delay + CHUNK);
    let mut chunks = input.chunks_exact(CHUNK);
    for chunk in chunks.by_ref() {
        let block = rs
            .process(&[chunk], None)
            .map_err(|e| unsupported(e.to_string()))?;
        out.extend_from_slice(&block[0]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let block = rs
            .process_partial(Some(&[rest]), None)
            .map_err(|e| unsupported(e.to_string()))?;
        out.extend_from_slice(&block[0]);
    }
    // Flush the filter's tail until the delayed samples are all out.
    while out.len() < wanted + delay {
        let block = rs
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| unsupported(e.to_string()))?;
        out.extend_from_slice(&block[0]);
    }
    out.drain(..delay);
    out.truncate(wanted);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        (0..(rate as f32 * secs) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Amplitude of `freq` in `x` (single-bin DFT).
    fn level(x: &[f32], freq: f32, rate: u32) -> f32 {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &s) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * freq as f64 * i as f64 / rate as f64;
            re += s as f64 * ph.cos();
            im += s as f64 * ph.sin();
        }
        (2.0 * (re * re + im * im).sqrt() / x.len() as f64) as f32
    }

    #[test]
    fn lengths_and_alignment() {
        let x = tone(440.0, 22_050, 1.0);
        let y = resample(&x, 22_050, 8_000).unwrap();
        assert_eq!(y.len(), 8_000);
        // A 440 Hz tone keeps its level and phase (no delay left in).
        let expect = tone(440.0, 8_000, 1.0);
        let err: f32 = y[400..7600]
            .iter()
            .zip(&expect[400..7600])
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / 7200.0;
        assert!(err < 0.01, "mean error {err}");
        assert_eq!(resample(&x[..5], 22_050, 8_000).unwrap().len(), 2);
        assert_eq!(
            resample(&tone(1.0, 8_000, 0.5), 8_000, 16_000)
                .unwrap()
                .len(),
            8_000
        );
    }

    #[test]
    fn removes_content_above_the_new_nyquist_instead_of_aliasing_it() {
        // 6 kHz cannot exist at 8 kHz; a decimator would fold it to 2 kHz.
        let x = tone(6_000.0, 22_050, 1.0);
        let y = resample(&x, 22_050, 8_000).unwrap();
        assert!(
            level(&y, 2_000.0, 8_000) < 0.005,
            "aliased {}",
            level(&y, 2_000.0, 8_000)
        );
        let kept = resample(&tone(1_000.0, 22_050, 1.0), 22_050, 8_000).unwrap();
        assert!((level(&kept, 1_000.0, 8_000) - 0.5).abs() < 0.02);
    }

    #[test]
    fn rejects_zero_rates_and_passes_through_equal_rates() {
        assert!(resample(&[0.0; 10], 0, 8_000).is_err());
        assert_eq!(resample(&[0.25; 10], 8_000, 8_000).unwrap(), vec![0.25; 10]);
        assert!(resample(&[], 8_000, 16_000).unwrap().is_empty());
    }
}
