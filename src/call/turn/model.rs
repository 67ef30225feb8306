//! Model-based turn-taking: a voice-activity model says, frame by frame, whether the caller is
//! speaking; an end-of-turn model, consulted at short pauses, says whether what they said so
//! far is a complete turn.
//!
//! ```text
//!            voiced start_ms            pause_ms of silence
//!  idle ───────────────────▶ speaking ─────────────────────▶ paused ── voice ──▶ speaking
//!   ▲      (SpeechStart)        │ continuous voice              │  Pause(audio) + Consult
//!   │                           │ barge_in_ms: BargeIn          │
//!   │                           │ max_turn_ms: Utterance(cap)   │ verdict >= complete_threshold
//!   │                           ▼                               │   (at a digits ask: and the
//!   └──────────────── Utterance / TooShort ◀────────────────────┘    number is long enough)
//!                                                 or end_silence_ms (digits: longer)
//! ```
//!
//! Why each rule (measured facts in `docs/turn-taking.md`):
//! - speech is decided by the model, not energy: line noise, music and tones are not speech;
//! - barge-in needs `barge_in_ms` of *continuous* speech: "uh-huh" (two short syllables with
//!   a gap) and coughs stop short of it;
//! - the end-of-turn model only ever ends a turn *early*, and not alone: measured on our
//!   telephone audio it calls many requests cut at a word boundary complete too ("Can I talk
//!   to", 0.87), so an early end also needs the pause's transcript to read as finished (not
//!   ending on "to", "the", "and", "um"...) and to mean something to the hotline (Whisper
//!   turns fragments into sentences: "Please cancel the" was heard as "Police can't solve
//!   it."); an incomplete or missing verdict or transcript falls back to the silence rule; at a digits ask a pause ends the turn early only when
//!   the transcript holds enough digits (a caller reading "four seven two ... one nine eight"
//!   is never cut between the groups);
//! - the turn's audio is cut at the pause (voice + `pause_ms`), so a speculative recognition
//!   started at the pause covers exactly the final audio when nothing more was said.

use std::collections::VecDeque;

use super::{Expectation, FRAME, FRAME_MS, TurnDetector, TurnEvent};
use crate::report::TurnEnd;

/// A voice-activity model: the probability that a 20 ms frame of 8 kHz audio is speech.
/// One per call (models with memory keep it here).
pub trait VoiceActivity: Send {
    fn speech_probability(&mut self, frame: &[f32]) -> f32;
    fn reset(&mut self);
}

/// The thresholds, in milliseconds and probabilities (documented in docs/turn-taking.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnConfig {
    /// A frame is speech from this probability...
    pub speech_threshold: f32,
    /// ...and, once speaking, stays speech down to this one (hysteresis).
    pub silence_threshold: f32,
    /// Speech frames before the caller counts as speaking.
    pub start_ms: u32,
    /// Continuous speech before a prompt is interrupted.
    pub barge_in_ms: u32,
    /// Less speech than this in a turn is a backchannel or a cough: ignored.
    pub min_voiced_ms: u32,
    /// A pause this long hands the audio to speculative recognition and the end-of-turn model.
    pub pause_ms: u32,
    /// The model's probability from which a turn is complete.
    pub complete_threshold: f32,
    /// Silence that ends a turn the model did not call complete.
    pub end_silence_ms: u32,
    /// The same at an ask that collects digits (callers pause between groups).
    pub digits_end_silence_ms: u32,
    /// A turn that never pauses (hold music, a television) ends here.
    pub max_turn_ms: u32,
    /// Audio kept from before the start, so the first syllable is not clipped: the model
    /// needs 100 ms of clear speech (and a 32 ms chunk) before it calls the start, and an
    /// unvoiced first sound ("what") scores low; 200 ms lost "What are" now and then.
    pub pre_roll_ms: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            speech_threshold: 0.5,
            silence_threshold: 0.35,
            start_ms: 100,
            barge_in_ms: 180,
            min_voiced_ms: 250,
            pause_ms: 200,
            complete_threshold: 0.7,
            end_silence_ms: 1000,
            digits_end_silence_ms: 1800,
            max_turn_ms: 15_000,
            pre_roll_ms: 500,
        }
    }
}

impl TurnConfig {
    /// These thresholds with the ones `o` sets.
    pub fn with(mut self, o: &crate::dialplan::model::TurnOverrides) -> Self {
        let set = |v: &mut u32, o: Option<u32>| *v = o.unwrap_or(*v);
        set(&mut self.pause_ms, o.pause_ms);
        set(&mut self.end_silence_ms, o.end_silence_ms);
        set(&mut self.digits_end_silence_ms, o.digits_end_silence_ms);
        set(&mut self.barge_in_ms, o.barge_in_ms);
        set(&mut self.max_turn_ms, o.max_turn_ms);
        self.complete_threshold = o.complete_threshold.unwrap_or(self.complete_threshold);
        // Frame-counted: the pause and silences are whole frames.
        self.pause_ms -= self.pause_ms % FRAME_MS;
        self
    }
}

/// The consultation in flight for the current pause.
#[derive(Debug, Clone, Copy)]
struct Consultation {
    id: u64,
    /// Samples of the utterance it covers (the turn's audio if it ends here).
    samples: usize,
    complete: Option<bool>,
    /// What recognition heard in those samples: whether it reads as a finished sentence,
    /// and how many digits it holds.
    finished: Option<bool>,
    digits: Option<usize>,
}

/// Words a finished request does not end on (articles, prepositions, conjunctions, fillers,
/// pronouns awaiting their verb), English and Mandarin.
const CONTINUATIONS: &[&str] = &[
    "a", "an", "the", "to", "of", "for", "and", "or", "but", "with", "my", "your", "our", "their",
    "his", "her", "its", "in", "on", "at", "by", "from", "about", "if", "because", "so", "that",
    "than", "as", "is", "are", "was", "were", "be", "am", "i", "i'm", "i'd", "i've", "we", "you",
    "it's", "this", "these", "those", "um", "uh", "er", "erm", "hmm", "like", "which", "who",
    "when", "where", "how", "what", "can", "could", "would", "will", "want", "need", "just",
    "also", "then", "的", "和", "还有", "那个", "就是", "嗯", "呃", "我", "我想", "要",
];

/// Whether recognised text reads as a finished request: something was said, and it does not
/// end on a word that needs more after it (or on a trailing comma or ellipsis).
pub fn reads_finished(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() || t.ends_with(',') || t.ends_with("...") || t.ends_with('-') {
        return false;
    }
    let last = t
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .to_lowercase();
    // Mandarin is written without spaces: its last character counts as the last word too.
    let last_char = t
        .chars()
        .rev()
        .find(|c| !c.is_ascii() && !matches!(c, '。' | '，' | '？' | '！' | '…'))
        .filter(|_| !t.ends_with(|c: char| c.is_ascii_alphanumeric()))
        .map(String::from)
        .unwrap_or_default();
    !CONTINUATIONS.contains(&last.as_str()) && !CONTINUATIONS.contains(&last_char.as_str())
}

/// The detector for one call.
pub struct ModelTurn<V: VoiceActivity> {
    vad: V,
    config: TurnConfig,
    expectation: Expectation,
    pre_roll: VecDeque<f32>,
    onset: Vec<f32>,
    onset_ms: u32,
    /// The utterance being collected.
    speech: Option<Vec<f32>>,
    voiced_ms: u32,
    /// Speech frames in a row (barge-in needs them continuous).
    run_ms: u32,
    barged_in: bool,
    silence_ms: u32,
    length_ms: u32,
    consultation: Option<Consultation>,
    next_id: u64,
    events: VecDeque<TurnEvent>,
}

impl<V: VoiceActivity> ModelTurn<V> {
    pub fn new(vad: V, config: TurnConfig) -> Self {
        Self {
            vad,
            config,
            expectation: Expectation::Speech,
            pre_roll: VecDeque::new(),
            onset: Vec::new(),
            onset_ms: 0,
            speech: None,
            voiced_ms: 0,
            run_ms: 0,
            barged_in: false,
            silence_ms: 0,
            length_ms: 0,
            consultation: None,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    fn end_silence(&self) -> u32 {
        match self.expectation {
            Expectation::Speech => self.config.end_silence_ms,
            Expectation::Digits { .. } => self.config.digits_end_silence_ms,
        }
    }

    /// Ends the turn: the audio cut at the pause, or the whole of it at the cap.
    fn finish(&mut self, ended_by: TurnEnd) {
        let mut audio = self.speech.take().unwrap_or_default();
        if ended_by != TurnEnd::Cap {
            let extra = self.silence_ms.saturating_sub(self.config.pause_ms) as usize * 8;
            audio.truncate(audio.len().saturating_sub(extra));
        }
        let silence_ms = self.silence_ms;
        let enough = self.voiced_ms >= self.config.min_voiced_ms;
        self.clear();
        self.events.push_back(if enough {
            TurnEvent::Utterance {
                audio,
                ended_by,
                silence_ms,
            }
        } else {
            TurnEvent::TooShort
        });
    }

    fn clear(&mut self) {
        self.onset.clear();
        self.onset_ms = 0;
        self.speech = None;
        self.voiced_ms = 0;
        self.run_ms = 0;
        self.barged_in = false;
        self.silence_ms = 0;
        self.length_ms = 0;
        self.consultation = None;
    }

    /// The current pause's consultation decided the turn is over (if it still stands):
    /// the model called it complete and the transcript agrees.
    fn settle(&mut self) {
        let Some(c) = self.consultation else { return };
        let Some(true) = c.complete else { return };
        match self.expectation {
            Expectation::Speech => {
                if c.finished == Some(true) {
                    self.finish(TurnEnd::Model);
                }
            }
            Expectation::Digits { min } => {
                if c.digits.is_some_and(|n| n >= min) {
                    self.finish(TurnEnd::Digits);
                }
            }
        }
    }
}

impl<V: VoiceActivity> TurnDetector for ModelTurn<V> {
    fn handle_frame(&mut self, frame: &[f32]) {
        let end_silence = self.end_silence();
        let p = self.vad.speech_probability(frame);
        let threshold = if self.speech.is_some() {
            self.config.silence_threshold
        } else {
            self.config.speech_threshold
        };
        let voiced = p >= threshold;
        if let Some(speech) = self.speech.as_mut() {
            speech.extend_from_slice(frame);
            self.length_ms += FRAME_MS;
            if voiced {
                self.voiced_ms += FRAME_MS;
                self.run_ms += FRAME_MS;
                self.silence_ms = 0;
                // They went on: that pause was not the end.
                if self.consultation.take().is_some() {
                    self.events.push_back(TurnEvent::Resumed);
                }
                if self.run_ms >= self.config.barge_in_ms && !self.barged_in {
                    self.barged_in = true;
                    self.events.push_back(TurnEvent::BargeIn);
                }
            } else {
                self.run_ms = 0;
                self.silence_ms += FRAME_MS;
            }
            if self.length_ms >= self.config.max_turn_ms && self.silence_ms == 0 {
                self.finish(TurnEnd::Cap);
                return;
            }
            if self.silence_ms >= end_silence || self.length_ms >= self.config.max_turn_ms {
                self.finish(TurnEnd::Silence);
                return;
            }
            if self.silence_ms == self.config.pause_ms
                && self.voiced_ms >= self.config.min_voiced_ms
            {
                let audio = speech.clone();
                let id = self.next_id;
                self.next_id += 1;
                self.consultation = Some(Consultation {
                    id,
                    samples: audio.len(),
                    complete: None,
                    finished: None,
                    digits: None,
                });
                self.events.push_back(TurnEvent::Pause(audio.clone()));
                self.events.push_back(TurnEvent::Consult { id, audio });
            }
            return;
        }
        if voiced {
            self.onset.extend_from_slice(frame);
            self.onset_ms += FRAME_MS;
            if self.onset_ms >= self.config.start_ms {
                let mut audio: Vec<f32> = self.pre_roll.drain(..).collect();
                audio.append(&mut self.onset);
                self.voiced_ms = self.onset_ms;
                self.run_ms = self.onset_ms;
                self.length_ms = self.onset_ms;
                self.onset_ms = 0;
                self.speech = Some(audio);
                self.events.push_back(TurnEvent::SpeechStart);
            }
            return;
        }
        // Not speech: a short onset becomes pre-roll.
        self.pre_roll.extend(self.onset.drain(..));
        self.onset_ms = 0;
        self.pre_roll.extend(frame.iter().copied());
        let keep = (self.config.pre_roll_ms as usize) * FRAME / FRAME_MS as usize;
        if self.pre_roll.len() > keep {
            self.pre_roll.drain(..self.pre_roll.len() - keep);
        }
    }

    fn handle_verdict(&mut self, id: u64, complete: f32) {
        let threshold = self.config.complete_threshold;
        if let Some(c) = self.consultation.as_mut()
            && c.id == id
        {
            c.complete = Some(complete >= threshold);
            if complete >= threshold && c.finished.is_none() {
                self.events.push_back(TurnEvent::LikelyComplete);
            }
            self.settle();
        }
    }

    fn handle_transcript(&mut self, samples: usize, text: &str, understood: bool) {
        if let Some(c) = self.consultation.as_mut()
            && c.samples == samples
        {
            c.digits = Some(crate::nlu::slots::digits(text).map_or(0, |d| d.len()));
            c.finished = Some(understood && reads_finished(text));
            self.settle();
        }
    }

    fn expect(&mut self, expectation: Expectation) {
        self.expectation = expectation;
    }

    fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    fn in_speech(&self) -> bool {
        self.speech.is_some()
    }

    fn voice_active(&self) -> bool {
        self.speech.is_some() && self.silence_ms < self.config.pause_ms
    }

    fn reset(&mut self) {
        self.clear();
        self.pre_roll.clear();
        self.events.clear();
        self.vad.reset();
    }

    fn name(&self) -> &'static str {
        "model"
    }
}

/// A voice-activity stand-in for tests: speech when the frame is loud.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoudIsSpeech;

impl VoiceActivity for LoudIsSpeech {
    fn speech_probability(&mut self, frame: &[f32]) -> f32 {
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32).sqrt();
        if rms > 0.05 { 1.0 } else { 0.0 }
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> ModelTurn<LoudIsSpeech> {
        ModelTurn::new(LoudIsSpeech, TurnConfig::default())
    }

    /// Feeds `ms` of voice (loud) or silence; returns the events.
    fn feed(d: &mut ModelTurn<LoudIsSpeech>, ms: u32, loud: bool) -> Vec<TurnEvent> {
        let frame = vec![if loud { 0.3 } else { 0.0 }; FRAME];
        let mut out = Vec::new();
        for _ in 0..ms / FRAME_MS {
            d.handle_frame(&frame);
            out.extend(std::iter::from_fn(|| d.poll_event()));
        }
        out
    }

    fn consult_id(events: &[TurnEvent]) -> u64 {
        events
            .iter()
            .find_map(|e| match e {
                TurnEvent::Consult { id, .. } => Some(*id),
                _ => None,
            })
            .expect("a consultation")
    }

    #[test]
    fn a_complete_turn_ends_at_the_pause_with_the_pause_audio() {
        let mut d = detector();
        let events = feed(&mut d, 800, true);
        assert_eq!(events, vec![TurnEvent::SpeechStart, TurnEvent::BargeIn]);
        let events = feed(&mut d, 200, false);
        let TurnEvent::Pause(paused) = &events[0] else {
            panic!("{events:?}")
        };
        let id = consult_id(&events);
        feed(&mut d, 60, false); // the verdict takes a while
        d.handle_verdict(id, 0.9);
        assert_eq!(d.poll_event(), Some(TurnEvent::LikelyComplete));
        assert!(d.poll_event().is_none(), "the transcript decides too");
        d.handle_transcript(paused.len(), "Where is my parcel?", true);
        let Some(TurnEvent::Utterance {
            audio, ended_by, ..
        }) = d.poll_event()
        else {
            panic!()
        };
        assert_eq!(ended_by, TurnEnd::Model);
        assert_eq!(&audio, paused, "the speculation covers exactly the turn");
    }

    #[test]
    fn a_complete_sounding_pause_whose_words_need_more_waits() {
        let mut d = detector();
        feed(&mut d, 600, true);
        let events = feed(&mut d, 200, false);
        let TurnEvent::Pause(paused) = &events[0] else {
            panic!("{events:?}")
        };
        let id = consult_id(&events);
        d.handle_transcript(paused.len(), "Can I talk to", true);
        d.handle_verdict(id, 0.87);
        assert_eq!(
            d.poll_event(),
            None,
            "\"to\" needs more: the silence rule decides"
        );
        for (text, finished) in [
            ("I want to track my order.", true),
            ("Yes.", true),
            ("I'd like a refund for the", false),
            ("Um, I want to, um", false),
            ("My order number is", false),
            ("four seven two one nine eight", true),
            ("How much does shipping cost to Canada?", true),
            ("我想查一下我的订单", true),
            ("我想", false),
            ("", false),
        ] {
            assert_eq!(reads_finished(text), finished, "{text:?}");
        }
    }

    #[test]
    fn an_incomplete_turn_waits_for_the_longer_silence_and_a_stale_verdict_is_ignored() {
        let mut d = detector();
        feed(&mut d, 600, true);
        let id = consult_id(&feed(&mut d, 200, false));
        d.handle_verdict(id, 0.2); // "I want to... um"
        assert!(d.poll_event().is_none());
        // They go on after 500 ms: the old consultation no longer counts.
        feed(&mut d, 300, false);
        feed(&mut d, 500, true);
        d.handle_verdict(id, 0.99);
        assert!(d.poll_event().is_none(), "a stale verdict ends nothing");
        let events = feed(&mut d, 1000, false);
        let Some(TurnEvent::Utterance {
            ended_by,
            silence_ms,
            ..
        }) = events.last()
        else {
            panic!("{events:?}")
        };
        assert_eq!(*ended_by, TurnEnd::Silence);
        assert_eq!(*silence_ms, 1000);
    }

    #[test]
    fn digits_in_two_groups_are_never_cut_between_them() {
        let mut d = detector();
        d.expect(Expectation::Digits { min: 6 });
        feed(&mut d, 900, true); // "four seven two"
        let events = feed(&mut d, 200, false);
        let TurnEvent::Pause(first) = &events[0] else {
            panic!()
        };
        let id = consult_id(&events);
        d.handle_verdict(id, 0.95); // the group sounds finished
        assert_eq!(d.poll_event(), Some(TurnEvent::LikelyComplete));
        d.handle_transcript(first.len(), "four seven two", true);
        assert!(
            d.poll_event().is_none(),
            "three digits are not an order number"
        );
        // A 1 s pause in all, then the second group.
        assert!(
            feed(&mut d, 800, false).is_empty(),
            "longer silence at a digits ask"
        );
        feed(&mut d, 900, true); // "one nine eight"
        let events = feed(&mut d, 200, false);
        let TurnEvent::Pause(whole) = &events[0] else {
            panic!()
        };
        let id = consult_id(&events);
        d.handle_transcript(whole.len(), "four seven two one nine eight", true);
        d.handle_verdict(id, 0.9);
        let Some(TurnEvent::Utterance {
            audio, ended_by, ..
        }) = d.poll_event()
        else {
            panic!()
        };
        assert_eq!(ended_by, TurnEnd::Digits);
        assert_eq!(&audio, whole);
    }

    #[test]
    fn backchannels_coughs_and_a_caller_who_never_stops() {
        let mut d = detector();
        // "uh-huh": two 160 ms syllables with a gap: speech starts, no barge-in, too short.
        let mut events = feed(&mut d, 160, true);
        events.extend(feed(&mut d, 100, false));
        events.extend(feed(&mut d, 160, true));
        events.extend(feed(&mut d, 1200, false));
        assert!(!events.contains(&TurnEvent::BargeIn), "{events:?}");
        assert!(events.contains(&TurnEvent::SpeechStart));
        // A 60 ms click is not even speech.
        assert!(feed(&mut d, 60, true).is_empty());
        feed(&mut d, 500, false);
        // Someone who talks without a pause is cut at the cap, with all their audio.
        let events = feed(&mut d, 16_000, true);
        let Some(TurnEvent::Utterance {
            audio, ended_by, ..
        }) = events
            .iter()
            .find(|e| matches!(e, TurnEvent::Utterance { .. }))
        else {
            panic!("no utterance in {} events", events.len())
        };
        assert_eq!(*ended_by, TurnEnd::Cap);
        assert!(audio.len() >= 8 * 15_000);
    }
}
