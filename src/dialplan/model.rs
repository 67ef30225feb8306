//! The dialplan as voxnav runs it, after reading and checking (`load`).

use std::collections::BTreeMap;

use super::nodes;
use super::yaml::Pos;

/// A reference to a node (by its qualified id: `node`, or `flow/node` inside a sub-flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub pos: Pos,
}

/// Something to say: a prompt id resolved to its text, or inline text; `{{variables}}` are
/// filled when spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    pub text: String,
    pub pos: Pos,
}

/// The language of a hotline (ASR language, NLU path, voice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Mandarin,
}

/// Slot types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// A number said digit by digit, in groups, or typed: `min`-`max` digits.
    Digits {
        min: usize,
        max: usize,
    },
    YesNo,
    /// A calendar day ("next Tuesday", "the third of May"), as `YYYY-MM-DD`; `tense` says
    /// which way a day without a year points.
    Date {
        tense: crate::nlu::dates::Tense,
    },
    /// A time of day ("half past four"), as 24-hour `HH:MM`.
    Time,
    /// An amount of money ("twenty five dollars fifty"), as `units.cents`.
    Money,
    /// A phone number of 7-15 digits, `+` for an international one.
    Phone,
    /// Letters and digits spelled out ("A B one two", "alpha bravo 12"), `min`-`max` long.
    Code {
        min: usize,
        max: usize,
    },
    /// A survey score from 1 to `max` (said, or a key), recorded as the call's satisfaction.
    Rating {
        max: u32,
    },
}

impl SlotKind {
    /// The YAML name of the type.
    pub fn name(&self) -> &'static str {
        match self {
            SlotKind::Digits { .. } => "digits",
            SlotKind::YesNo => "yes_no",
            SlotKind::Date { .. } => "date",
            SlotKind::Time => "time",
            SlotKind::Money => "money",
            SlotKind::Phone => "phone",
            SlotKind::Code { .. } => "code",
            SlotKind::Rating { .. } => "rating",
        }
    }

    /// Whether a value of this type is picked out of any sentence (an order number said in
    /// the first request). A yes or a no, or a score, means something only as the answer to a
    /// question.
    pub fn heard_anywhere(&self) -> bool {
        !matches!(self, SlotKind::YesNo | SlotKind::Rating { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDef {
    pub name: String,
    pub kind: SlotKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentDef {
    pub name: String,
    pub examples: Vec<String>,
    pub keywords: Vec<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbDef {
    pub id: String,
    /// A few words naming the entry, spoken when the caller's question sits between two
    /// entries ("Do you mean our opening hours, or delivery times?"); the first question
    /// when not given.
    pub topic: Option<String>,
    pub questions: Vec<String>,
    pub answer: String,
    pub pos: Pos,
}

/// Tunables with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Turns (caller inputs) before the max-turns handler.
    pub max_turns: u32,
    /// Intent confidence below which an utterance counts as not understood.
    pub min_confidence: f32,
    /// Knowledge-base score needed to answer from it.
    pub kb_threshold: f32,
    /// Milliseconds of silence before no-input.
    pub no_input_ms: u64,
    /// Sentiment score at or above which the caller counts as angry.
    pub anger_threshold: f32,
    /// Turn-taking thresholds this hotline changes (`settings.turn`; the server's otherwise).
    pub turn: TurnOverrides,
    /// A slot value heard with a recognition confidence below this is read back for the
    /// caller to confirm ("I heard 4 7 2 1 9 8. Is that right?"); 0 never, 1 always. Measured
    /// on spoken order numbers: right ones came at 0.64-0.86 (0.64: "472-198" read in two
    /// groups through a live call), misheard ones of a valid length at 0.56-0.59.
    pub confirm_below: f32,
    /// Recognised text below this confidence is not taken as a request: Whisper makes
    /// sentences of noise and music (0.36-0.38 measured) where speech scored 0.56 and up,
    /// misheard or not (tests/understanding.rs prints it).
    pub min_asr_confidence: f32,
}

/// The turn detectors voxnav has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorKind {
    /// Silero VAD and the Smart Turn end-of-turn model (the default).
    Model,
    /// Frame energy and a fixed 700 ms silence (the first version's rule).
    Energy,
}

/// Turn-taking thresholds a hotline or the server config may set (documented with their
/// defaults in docs/turn-taking.md); None keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TurnOverrides {
    /// Which detector decides turns.
    pub detector: Option<DetectorKind>,
    /// A pause this long consults the end-of-turn model and starts recognition.
    pub pause_ms: Option<u32>,
    /// The model's probability from which a turn is complete.
    pub complete_threshold: Option<f32>,
    /// Silence that ends a turn the model did not call complete.
    pub end_silence_ms: Option<u32>,
    /// The same at an ask for a number.
    pub digits_end_silence_ms: Option<u32>,
    /// Continuous speech that interrupts a prompt.
    pub barge_in_ms: Option<u32>,
    /// The longest turn.
    pub max_turn_ms: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_turns: 15,
            min_confidence: 0.35,
            kb_threshold: 0.6,
            no_input_ms: 6000,
            anger_threshold: 0.8,
            turn: TurnOverrides::default(),
            confirm_below: 0.6,
            min_asr_confidence: 0.45,
        }
    }
}

/// Global handlers, applied at every `ask`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handlers {
    /// The caller asks for a human (the `agent` intent).
    pub agent: Option<Ref>,
    /// The caller says goodbye (the `goodbye` intent).
    pub goodbye: Option<Ref>,
    /// The caller sounds angry or frustrated.
    pub angry: Option<Ref>,
    /// Silence after an ask's own no-input reprompts ran out.
    pub no_input: Option<Ref>,
    /// Not understood after an ask's own no-match reprompts ran out.
    pub no_match: Option<Ref>,
    /// More turns than `settings.max_turns`.
    pub max_turns: Option<Ref>,
}

/// One node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDef {
    pub id: String,
    pub kind: nodes::Node,
    /// Where to go after this node (kinds that branch say so themselves).
    pub next: Option<Ref>,
    pub pos: Pos,
}

/// A loaded, checked dialplan.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialplan {
    pub file: String,
    pub name: String,
    pub language: Language,
    pub asr_model: String,
    /// Text that conditions recognition (`asr: { prompt: ... }`): domain words, or the
    /// script to write in ("以下是普通话的句子。" for simplified Chinese).
    pub asr_prompt: Option<String>,
    /// `en_US-joe-medium` (Piper) or `espeak:VOICE` (espeak-ng's synthesiser).
    pub voice: String,
    pub settings: Settings,
    pub intents: Vec<IntentDef>,
    pub slots: Vec<SlotDef>,
    pub knowledge: Vec<KbDef>,
    pub prompts: BTreeMap<String, String>,
    /// Initial variables (`vars:`), e.g. backend addresses; overridable at start.
    pub vars: BTreeMap<String, String>,
    pub handlers: Handlers,
    pub start: Ref,
    pub nodes: BTreeMap<String, NodeDef>,
    /// Sub-flows: name -> qualified id of the first node.
    pub flows: BTreeMap<String, String>,
}

impl Dialplan {
    pub fn node(&self, id: &str) -> Option<&NodeDef> {
        self.nodes.get(id)
    }

    pub fn slot(&self, name: &str) -> Option<&SlotDef> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// Every text the dialplan may say that has no `{{variables}}`, whitespace-normalised as
    /// the engine speaks it: what can be synthesised once at load.
    pub fn static_texts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |t: &str| {
            if !t.contains("{{") {
                let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
                if !t.is_empty() && !out.contains(&t) {
                    out.push(t);
                }
            }
        };
        for node in self.nodes.values() {
            node.kind.speech().iter().for_each(|s| add(&s.text));
        }
        for k in &self.knowledge {
            add(&k.answer);
        }
        // The built-in phrases without variables (the keypad offer, the goodbyes).
        for phrase in super::phrases::Phrase::ALL {
            add(phrase.text(self));
        }
        out
    }
}
