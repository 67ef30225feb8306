//! The first version's endpointer, kept as a `TurnDetector`: 20 ms frames of 8 kHz audio in,
//! events out. Energy against an adaptive noise floor: a frame is voiced when it is 9 dB above the
//! floor and above -45 dBFS. Speech starts after 120 ms of voiced frames (clicks and line noise
//! are shorter), interrupts a prompt after 240 ms (backchannels are shorter), and an utterance
//! ends after 700 ms of silence (long enough for people reading out numbers; see
//! `EndpointerConfig`). Utterances with less than
//! 250 ms of voice ("uh-huh", a cough) are reported as too short and not recognised.
//!
//! Speculation: at the first 240 ms pause of an utterance long enough to count, `Pause` hands
//! over the audio so far, so recognition can start while the endpointer still waits for the
//! 700 ms that make it final. The final `Utterance` is cut the same way (voice plus 240 ms of
//! its trailing silence): if the caller said nothing more, it is exactly the speculative audio
//! (same length) and the speculative result can be used as it is.

use std::collections::VecDeque;

use super::{Expectation, FRAME_MS, TurnDetector, TurnEvent};
use crate::report::TurnEnd;

/// Tuning, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct EndpointerConfig {
    pub start_ms: u32,
    /// Voice needed before a prompt is interrupted: longer than a backchannel ("uh-huh",
    /// "mm") or a cough, short enough that a caller who means it is heard at once.
    pub barge_in_ms: u32,
    pub end_silence_ms: u32,
    pub min_voiced_ms: u32,
    pub max_utterance_ms: u32,
    /// Audio kept from before the start, so the first syllable is not clipped.
    pub pre_roll_ms: u32,
    /// A pause this long hands the audio so far to speculative recognition (0: never); the
    /// utterance keeps this much of its trailing silence.
    pub speculate_ms: u32,
    /// Voiced means this many dB above the noise floor...
    pub above_floor_db: f32,
    /// ...and at least this loud.
    pub min_level_dbfs: f32,
}

impl Default for EndpointerConfig {
    fn default() -> Self {
        Self {
            start_ms: 120,
            barge_in_ms: 240,
            end_silence_ms: 700,
            min_voiced_ms: 250,
            max_utterance_ms: 15_000,
            pre_roll_ms: 200,
            speculate_ms: 240,
            above_floor_db: 9.0,
            min_level_dbfs: -45.0,
        }
    }
}

/// What a frame led to.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// The caller started speaking (no-input timers stop).
    SpeechStart,
    /// The caller has been speaking `barge_in_ms`: a prompt that allows it stops.
    BargeIn,
    /// A complete utterance (pre-roll included), ready for recognition, and how long the
    /// voice has been silent.
    Utterance(Vec<f32>, u32),
    /// The caller paused (`speculate_ms`): the utterance so far, which becomes final unless
    /// they go on.
    Pause(Vec<f32>),
    /// Speech that was too short to be a request (backchannel, cough): ignore it.
    TooShort,
}

/// The endpointer state for one call.
#[derive(Debug)]
pub struct Endpointer {
    config: EndpointerConfig,
    noise_floor_db: f32,
    /// The last `pre_roll_ms` of samples before any onset (a ring: no allocation per frame).
    pre_roll: VecDeque<f32>,
    /// Voiced frames in a row before speech is declared.
    onset: Vec<f32>,
    onset_frames: u32,
    /// The utterance being collected, once speech started.
    speech: Option<Vec<f32>>,
    voiced_ms: u32,
    silence_ms: u32,
    length_ms: u32,
    /// Events for `poll_event`.
    events: VecDeque<TurnEvent>,
}

fn level_dbfs(frame: &[f32]) -> f32 {
    let power = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * power.max(1e-10).log10()
}

impl Endpointer {
    pub fn new(config: EndpointerConfig) -> Self {
        Self {
            config,
            noise_floor_db: -60.0,
            pre_roll: VecDeque::new(),
            onset: Vec::new(),
            onset_frames: 0,
            speech: None,
            voiced_ms: 0,
            silence_ms: 0,
            length_ms: 0,
            events: VecDeque::new(),
        }
    }

    /// True while an utterance is being collected.
    pub fn in_speech(&self) -> bool {
        self.speech.is_some()
    }

    /// Forgets any partial utterance (e.g. while the bot talks with barge-in off).
    pub fn reset(&mut self) {
        self.onset.clear();
        self.onset_frames = 0;
        self.speech = None;
        self.voiced_ms = 0;
        self.silence_ms = 0;
        self.length_ms = 0;
    }

    /// One 20 ms frame.
    pub fn feed(&mut self, frame: &[f32]) -> Option<VadEvent> {
        let level = level_dbfs(frame);
        let voiced = level > self.noise_floor_db + self.config.above_floor_db
            && level > self.config.min_level_dbfs;
        if let Some(speech) = self.speech.as_mut() {
            speech.extend_from_slice(frame);
            self.length_ms += FRAME_MS;
            if voiced {
                self.voiced_ms += FRAME_MS;
                self.silence_ms = 0;
                if self.voiced_ms == self.config.barge_in_ms {
                    return Some(VadEvent::BargeIn);
                }
            } else {
                self.silence_ms += FRAME_MS;
            }
            let ended = self.silence_ms >= self.config.end_silence_ms
                || self.length_ms >= self.config.max_utterance_ms;
            if ended {
                let mut audio = self.speech.take().unwrap_or_default();
                // Keep `speculate_ms` of the trailing silence (see the module notes).
                let extra = self.silence_ms.saturating_sub(self.config.speculate_ms) * 8;
                audio.truncate(audio.len().saturating_sub(extra as usize));
                let enough = self.voiced_ms >= self.config.min_voiced_ms;
                let silence_ms = self.silence_ms.min(self.config.end_silence_ms);
                self.reset();
                return Some(if enough {
                    VadEvent::Utterance(audio, silence_ms)
                } else {
                    VadEvent::TooShort
                });
            }
            if self.config.speculate_ms > 0
                && self.silence_ms == self.config.speculate_ms
                && self.voiced_ms >= self.config.min_voiced_ms
            {
                return Some(VadEvent::Pause(speech.clone()));
            }
            return None;
        }
        if voiced {
            self.onset.extend_from_slice(frame);
            self.onset_frames += 1;
            if self.onset_frames * FRAME_MS >= self.config.start_ms {
                let mut audio: Vec<f32> = self.pre_roll.drain(..).collect();
                audio.append(&mut self.onset);
                self.voiced_ms = self.onset_frames * FRAME_MS;
                self.length_ms = self.voiced_ms;
                self.onset_frames = 0;
                self.speech = Some(audio);
                return Some(VadEvent::SpeechStart);
            }
            return None;
        }
        // Unvoiced: the onset was a blip; it becomes pre-roll, and the floor adapts.
        self.pre_roll.extend(self.onset.drain(..));
        self.onset_frames = 0;
        self.pre_roll.extend(frame.iter().copied());
        let keep = (self.config.pre_roll_ms * 8) as usize;
        if self.pre_roll.len() > keep {
            self.pre_roll.drain(..self.pre_roll.len() - keep);
        }
        // Slow adaptation (about 1 s), faster downward so a quieter line is learnt quickly.
        let alpha = if level < self.noise_floor_db {
            0.2
        } else {
            0.02
        };
        self.noise_floor_db += alpha * (level - self.noise_floor_db);
        None
    }
}

impl TurnDetector for Endpointer {
    fn handle_frame(&mut self, frame: &[f32]) {
        let event = match self.feed(frame) {
            None => return,
            Some(VadEvent::SpeechStart) => TurnEvent::SpeechStart,
            Some(VadEvent::BargeIn) => TurnEvent::BargeIn,
            Some(VadEvent::Pause(audio)) => TurnEvent::Pause(audio),
            Some(VadEvent::TooShort) => TurnEvent::TooShort,
            Some(VadEvent::Utterance(audio, silence_ms)) => TurnEvent::Utterance {
                audio,
                // A turn that hit the length limit never paused.
                ended_by: if silence_ms < self.config.end_silence_ms {
                    TurnEnd::Cap
                } else {
                    TurnEnd::Silence
                },
                silence_ms,
            },
        };
        self.events.push_back(event);
    }

    /// The energy rule has no end-of-turn model: nothing to consult, no verdicts.
    fn handle_verdict(&mut self, _id: u64, _complete: f32) {}

    fn handle_transcript(&mut self, _samples: usize, _text: &str, _understood: bool) {}

    /// The fixed silence applies to every ask.
    fn expect(&mut self, _expectation: Expectation) {}

    fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    fn in_speech(&self) -> bool {
        Endpointer::in_speech(self)
    }

    fn voice_active(&self) -> bool {
        self.speech.is_some() && self.silence_ms < self.config.speculate_ms
    }

    fn reset(&mut self) {
        Endpointer::reset(self);
        self.events.clear();
    }

    fn name(&self) -> &'static str {
        "energy"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u32, amplitude: f32) -> Vec<Vec<f32>> {
        let samples: Vec<f32> = (0..ms * 8)
            .map(|i| amplitude * (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 8000.0).sin())
            .collect();
        samples.chunks(160).map(<[f32]>::to_vec).collect()
    }

    fn noise(ms: u32, amplitude: f32, seed: &mut u32) -> Vec<Vec<f32>> {
        let samples: Vec<f32> = (0..ms * 8)
            .map(|_| {
                *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                amplitude * ((*seed >> 16) as f32 / 32_768.0 - 1.0)
            })
            .collect();
        samples.chunks(160).map(<[f32]>::to_vec).collect()
    }

    fn run(ep: &mut Endpointer, frames: Vec<Vec<f32>>) -> Vec<VadEvent> {
        frames.iter().filter_map(|f| ep.feed(f)).collect()
    }

    #[test]
    fn speech_interrupts_after_240_ms_of_voice_a_backchannel_does_not() {
        let mut ep = Endpointer::new(EndpointerConfig::default());
        let mut frames = tone(200, 0.3);
        frames.extend(tone(800, 0.0));
        assert!(!run(&mut ep, frames).contains(&VadEvent::BargeIn));
        let mut frames = tone(400, 0.3);
        frames.extend(tone(800, 0.0));
        let events = run(&mut ep, frames);
        assert_eq!(events[..2], [VadEvent::SpeechStart, VadEvent::BargeIn]);
    }

    #[test]
    fn one_utterance_with_pre_roll_and_hangover() {
        let mut seed = 1;
        let mut ep = Endpointer::new(EndpointerConfig::default());
        let mut frames = noise(1000, 0.002, &mut seed);
        frames.extend(tone(1000, 0.3));
        frames.extend(noise(1000, 0.002, &mut seed));
        let mut events = run(&mut ep, frames);
        events.retain(|e| !matches!(e, VadEvent::Pause(_) | VadEvent::BargeIn));
        assert_eq!(
            events.len(),
            2,
            "{:?}",
            events
                .iter()
                .map(|e| matches!(e, VadEvent::SpeechStart))
                .collect::<Vec<_>>()
        );
        assert_eq!(events[0], VadEvent::SpeechStart);
        let VadEvent::Utterance(audio, _) = &events[1] else {
            panic!("{:?}", events[1])
        };
        let ms = audio.len() as u32 / 8;
        // 200 ms pre-roll + 1000 ms voice + 240 ms of the trailing silence.
        assert!((1400..=1480).contains(&ms), "{ms} ms");
    }

    #[test]
    fn a_pause_hands_over_exactly_the_audio_the_utterance_ends_with() {
        let mut ep = Endpointer::new(EndpointerConfig::default());
        let mut frames = tone(800, 0.3);
        frames.extend(tone(1000, 0.0));
        let events = run(&mut ep, frames);
        let [
            VadEvent::SpeechStart,
            VadEvent::BargeIn,
            VadEvent::Pause(early),
            VadEvent::Utterance(last, 700),
        ] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!(early, last, "nothing said after the pause: same audio");
        // The caller goes on after the pause: the utterance is longer than the speculation.
        let mut frames = tone(800, 0.3);
        frames.extend(tone(300, 0.0));
        frames.extend(tone(500, 0.3));
        frames.extend(tone(1000, 0.0));
        let events = run(&mut ep, frames);
        let pauses: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                VadEvent::Pause(a) => Some(a.len()),
                _ => None,
            })
            .collect();
        let Some(VadEvent::Utterance(last, _)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(pauses.len(), 2, "one pause per stop: {pauses:?}");
        assert!(pauses[0] < last.len() && pauses[1] == last.len());
    }

    #[test]
    fn pauses_between_digits_do_not_end_the_utterance() {
        let mut ep = Endpointer::new(EndpointerConfig::default());
        let mut frames = tone(300, 0.3);
        for _ in 0..5 {
            frames.extend(tone(300, 0.0)); // a 300 ms pause between groups
            frames.extend(tone(300, 0.3));
        }
        frames.extend(tone(800, 0.0));
        let events = run(&mut ep, frames);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, VadEvent::Utterance(..)))
                .count(),
            1
        );
    }

    #[test]
    fn clicks_backchannels_and_steady_noise() {
        let mut seed = 9;
        let mut ep = Endpointer::new(EndpointerConfig::default());
        // A 60 ms click: no speech at all.
        let mut frames = tone(60, 0.5);
        frames.extend(tone(500, 0.0));
        assert!(run(&mut ep, frames).is_empty());
        // A 160 ms "uh-huh": speech starts, but it neither interrupts nor counts as a request.
        let mut frames = tone(160, 0.3);
        frames.extend(tone(800, 0.0));
        assert_eq!(
            run(&mut ep, frames),
            vec![VadEvent::SpeechStart, VadEvent::TooShort]
        );
        // Steady line noise at -30 dBFS: the floor rises to it and it is not speech.
        let mut ep = Endpointer::new(EndpointerConfig::default());
        let events = run(&mut ep, noise(5000, 0.05, &mut seed));
        assert!(
            events.len() <= 2,
            "a loud line may trigger once while the floor adapts: {}",
            events.len()
        );
        let events = run(&mut ep, noise(3000, 0.05, &mut seed));
        assert!(events.is_empty(), "adapted");
    }
}
