//! The mel filter bank whisper.cpp expects in the GGML header: librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=80)` (Slaney mel scale, Slaney area normalisation),
//! which is what OpenAI's Whisper ships as `mel_filters.npz`. Computed, not copied.

/// Sample rate Whisper's front end runs at.
pub const SAMPLE_RATE: f64 = 16_000.0;
/// FFT size of Whisper's STFT (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Frequency bins of a real FFT of `N_FFT` points.
pub const N_BINS: usize = N_FFT / 2 + 1;

// Slaney's mel scale: linear below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// Row-major `n_mels x N_BINS` triangular filters covering 0 Hz to Nyquist.
pub fn filter_bank(n_mels: usize) -> Vec<f32> {
    let nyquist = SAMPLE_RATE / 2.0;
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    // n_mels + 2 band edges, evenly spaced in mel.
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut bank = vec![0f32; n_mels * N_BINS];
    for m in 0..n_mels {
        let (lo, mid, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        // Slaney normalisation: each filter has unit area.
        let norm = 2.0 / (hi - lo);
        for k in 0..N_BINS {
            let f = k as f64 * SAMPLE_RATE / N_FFT as f64;
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            bank[m * N_BINS + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    bank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_and_is_continuous_at_1khz() {
        for hz in [0.0, 123.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    #[test]
    fn bank_matches_librosa_reference_values() {
        let bank = filter_bank(80);
        assert_eq!(bank.len(), 80 * 201);
        // Reference values from a numpy transcription of librosa's `filters.mel` (float64, then
        // f32); (0, 1) also equals OpenAI Whisper's shipped `mel_filters.npz` (0.02486259).
        let at = |m: usize, k: usize| bank[m * N_BINS + k];
        assert!((at(0, 1) - 0.024_862_595).abs() < 1e-7, "{}", at(0, 1));
        assert!((at(1, 2) - 0.022_871_772).abs() < 1e-7, "{}", at(1, 2));
        assert!(
            (at(79, 190) - 0.002_232_055).abs() < 1e-7,
            "{}",
            at(79, 190)
        );
        let total: f32 = bank.iter().sum();
        assert!((total - 1.999_024_2).abs() < 1e-4, "{total}");
        // Every filter is non-negative with a single peak and the top one ends at Nyquist.
        for m in 0..80 {
            let row = &bank[m * N_BINS..(m + 1) * N_BINS];
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!(row.iter().any(|&v| v > 0.0), "filter {m} is empty");
        }
        assert_eq!(at(79, 200), 0.0);
    }
}
