//! Fault injection for the real recognizer, to test how calls degrade: `VOXNAV_FAULT_ASR=fail`
//! makes every recognition fail like a broken engine; `VOXNAV_FAULT_ASR=slow:MS` delays each
//! one by MS milliseconds first (honouring the request's deadline, as a slow engine queue
//! would). Only read by `voxnav serve`, which says so at start when it is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SpeechError;
use super::asr::{RecognizeOptions, Recognizer, Transcript};

/// The injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsrFault {
    Fail,
    Slow(Duration),
}

impl AsrFault {
    /// Parses `fail` or `slow:MS`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "fail" => Ok(Self::Fail),
            other => other
                .strip_prefix("slow:")
                .and_then(|ms| ms.parse().ok())
                .map(|ms| Self::Slow(Duration::from_millis(ms)))
                .ok_or_else(|| format!("VOXNAV_FAULT_ASR={other}: expected `fail` or `slow:MS`")),
        }
    }

    /// The fault asked for in the environment, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("VOXNAV_FAULT_ASR") {
            Ok(v) if !v.is_empty() => Self::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// A recognizer with a fault in front of it.
pub struct FaultyRecognizer {
    pub inner: Arc<dyn Recognizer>,
    pub fault: AsrFault,
}

impl Recognizer for FaultyRecognizer {
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError> {
        match self.fault {
            AsrFault::Fail => Err(SpeechError::Engine("injected failure".into())),
            AsrFault::Slow(delay) => {
                let until = Instant::now() + delay;
                let wake = options.deadline.map_or(until, |d| d.min(until));
                std::thread::sleep(wake.saturating_duration_since(Instant::now()));
                if options.deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(SpeechError::Deadline);
                }
                self.inner.recognize(samples, sample_rate, options)
            }
        }
    }

    fn describe(&self) -> String {
        format!("{} with {:?} injected", self.inner.describe(), self.fault)
    }

    fn queue(&self) -> (usize, usize) {
        self.inner.queue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::fake::FakeRecognizer;

    #[test]
    fn faults_parse_and_behave() {
        assert_eq!(AsrFault::parse("fail"), Ok(AsrFault::Fail));
        assert_eq!(
            AsrFault::parse("slow:250"),
            Ok(AsrFault::Slow(Duration::from_millis(250)))
        );
        assert!(AsrFault::parse("slow").is_err());
        let audio = vec![0.1f32; 8000];
        let slow = FaultyRecognizer {
            inner: Arc::new(FakeRecognizer::hearing(&["hello"])),
            fault: AsrFault::Slow(Duration::from_secs(30)),
        };
        let started = Instant::now();
        let options = RecognizeOptions {
            deadline: Some(Instant::now() + Duration::from_millis(50)),
            ..Default::default()
        };
        assert!(matches!(
            slow.recognize(&audio, 8000, &options),
            Err(SpeechError::Deadline)
        ));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the deadline is honoured"
        );
        let failing = FaultyRecognizer {
            inner: Arc::new(FakeRecognizer::hearing(&["hello"])),
            fault: AsrFault::Fail,
        };
        assert!(
            failing
                .recognize(&audio, 8000, &RecognizeOptions::default())
                .is_err()
        );
    }
}
