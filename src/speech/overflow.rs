//! Overflow to a lighter recognizer when the main one's queue is long.
//!
//! Whisper base hears telephone speech best but costs over a second of a core per request;
//! under many talking callers requests wait for it. A request that would wait behind
//! `when_waiting` others goes to the other engine instead, on the same cores: the queue drains
//! faster if that engine is cheaper, at the price of its accuracy on the turns that overflow.
//! Both engines' queues count as one for load decisions (the keypad offer). With Moonshine as
//! packaged today it is not cheaper enough to pay (see `moonshine.rs`), so it is off by
//! default.

use std::sync::Arc;

use super::SpeechError;
use super::asr::{RecognizeOptions, Recognizer, Transcript};

pub struct OverflowRecognizer {
    pub primary: Arc<dyn Recognizer>,
    pub light: Arc<dyn Recognizer>,
    /// Requests already waiting for the primary engine from which the next one overflows.
    pub when_waiting: usize,
}

impl OverflowRecognizer {
    /// Whether a request arriving now goes to the light engine.
    pub fn overflows(&self) -> bool {
        self.primary.queue().1 >= self.when_waiting
    }
}

impl Recognizer for OverflowRecognizer {
    fn recognize(
        &self,
        samples: &[f32],
        sample_rate: u32,
        options: &RecognizeOptions,
    ) -> Result<Transcript, SpeechError> {
        if self.overflows() {
            self.light.recognize(samples, sample_rate, options)
        } else {
            self.primary.recognize(samples, sample_rate, options)
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} when {} wait",
            self.primary.describe(),
            self.light.describe(),
            self.when_waiting
        )
    }

    fn queue(&self) -> (usize, usize) {
        let (a, b) = (self.primary.queue(), self.light.queue());
        (a.0 + b.0, a.1 + b.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::fake::FakeRecognizer;
    use std::sync::Mutex;

    /// A recognizer with a settable queue that names itself in its transcript.
    struct Named {
        name: &'static str,
        queue: Mutex<(usize, usize)>,
    }

    impl Recognizer for Named {
        fn recognize(
            &self,
            samples: &[f32],
            rate: u32,
            o: &RecognizeOptions,
        ) -> Result<Transcript, SpeechError> {
            let mut t = FakeRecognizer::hearing(&["x"]).recognize(samples, rate, o)?;
            t.text = self.name.into();
            t.engine = self.name;
            Ok(t)
        }
        fn describe(&self) -> String {
            self.name.into()
        }
        fn queue(&self) -> (usize, usize) {
            *self.queue.lock().unwrap()
        }
    }

    #[test]
    fn requests_overflow_only_when_the_primary_queue_is_long() {
        let primary = Arc::new(Named {
            name: "primary",
            queue: Mutex::new((2, 0)),
        });
        let light = Arc::new(Named {
            name: "light",
            queue: Mutex::new((0, 0)),
        });
        let r = OverflowRecognizer {
            primary: primary.clone(),
            light: light.clone(),
            when_waiting: 1,
        };
        let audio = vec![0.1f32; 800];
        let heard = |r: &OverflowRecognizer| {
            r.recognize(&audio, 8000, &RecognizeOptions::default())
                .unwrap()
                .engine
        };
        assert_eq!(heard(&r), "primary");
        *primary.queue.lock().unwrap() = (2, 1);
        *light.queue.lock().unwrap() = (1, 3);
        assert_eq!(heard(&r), "light");
        assert_eq!(r.queue(), (3, 4), "both queues count for load decisions");
    }
}
