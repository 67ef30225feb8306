//! `ask`: speak a prompt and listen for speech and/or keypad digits.
//!
//! ```yaml
//! get_order:
//!   ask:
//!     prompt: ask_order_number
//!     slot: order_number       # fill a slot (its type decides what counts), or
//!     intents: [order_status, cancel_order]   # expect intents (any intent if omitted)
//!     kb: true                 # a question the knowledge base answers is accepted too
//!     dtmf: 10                 # keypad: up to 10 digits, `#` ends early
//!     timeout_ms: 6000         # silence before no-input (default: settings.no_input_ms)
//!     barge_in: true           # the caller may interrupt the prompt (default true)
//!     no_input: [reprompt_1, reprompt_2]   # escalating reprompts on silence
//!     no_match: [not_understood_1]         # escalating reprompts when not understood
//!     confirm: true            # read the slot's value back for a yes (default: only
//!                              # when recognition was unsure, settings.confirm_below)
//!     fail: transfer_agent     # after the reprompts (default: the global handlers)
//!     other: route_menu        # with a slot: a request instead of the value goes here
//!   next: route_order
//! ```
//!
//! `other` is for questions a caller may answer with something else entirely ("I see your
//! order is out for delivery; is that why you're calling?" "No, I want a refund"): when the
//! reply holds no value for the slot, or is a "no" to a yes/no slot, and the router is sure
//! of an intent (other than the global handlers') or, with `kb: true`, the knowledge base
//! has a clear answer, the call goes to `other` with `intent`/`kb_id`/`utterance` set, as after an intent ask.

use super::{NodeKind, Walk};
use crate::dialplan::engine::{Action, CallEngine, Waiting};
use crate::dialplan::model::{Ref, Speech};
use crate::dialplan::read::{Ctx, MapReader, boolean, fill, number, texts};
use crate::dialplan::yaml::{Pos, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub prompt: Speech,
    pub slot: Option<(String, Pos)>,
    /// Expected intents (empty: any).
    pub intents: Vec<(String, Pos)>,
    pub kb: bool,
    pub dtmf_max: usize,
    pub timeout_ms: Option<u64>,
    pub barge_in: bool,
    pub no_input: Vec<Speech>,
    pub no_match: Vec<Speech>,
    pub fail: Option<Ref>,
    /// Where a request instead of the slot's value goes.
    pub other: Option<Ref>,
    /// Read the slot's value back: always (true), never (false), or when recognition was
    /// unsure (None: `settings.confirm_below`).
    pub confirm: Option<bool>,
}

impl NodeKind for Ask {
    fn enter(
        &self,
        id: &str,
        next: Option<String>,
        call: &mut CallEngine,
        actions: &mut Vec<Action>,
    ) -> Walk {
        if call.waiting != Waiting::Ask(id.to_string()) {
            call.no_input = 0;
            call.no_match = 0;
            call.confirming = None;
        }
        call.waiting = Waiting::Ask(id.to_string());
        // The caller already said it: no need to ask (read back if unsure).
        if let Some((slot, _)) = &self.slot
            && let Some(h) = call.heard.remove(slot)
        {
            if call.needs_confirming(self, h.confidence) {
                call.confirm(self, h, actions);
                return Walk::Wait;
            }
            call.set_slot(&h.slot, &h.value, "given before the ask");
            call.waiting = Waiting::Nothing;
            Walk::Go(next)
        } else {
            let prompt = fill(&self.prompt.text, |v| call.vars.get(v).cloned());
            call.last_prompt = prompt;
            call.say(actions, &self.prompt.text, self.barge_in);
            call.listen(self, actions);
            Walk::Wait
        }
    }

    fn speech(&self) -> Vec<&Speech> {
        std::iter::once(&self.prompt)
            .chain(&self.no_input)
            .chain(&self.no_match)
            .collect()
    }

    fn targets_mut(&mut self) -> Vec<&mut Ref> {
        self.fail.iter_mut().chain(self.other.iter_mut()).collect()
    }
}

pub fn read(value: &Yaml, _node: &mut MapReader, cx: &mut Ctx) -> Option<Ask> {
    let mut m = MapReader::new(value, "ask", cx.p);
    let prompt = m
        .require("prompt", cx.p)
        .and_then(|y| cx.speech(y, "prompt"));
    let slot = m
        .get("slot")
        .and_then(|y| crate::dialplan::read::text(y, "slot", cx.p));
    let intents = m
        .get("intents")
        .map(|y| texts(y, "intents", cx.p))
        .unwrap_or_default();
    let kb = m
        .get("kb")
        .and_then(|y| boolean(y, "kb", cx.p))
        .unwrap_or(false);
    let dtmf_max = m
        .get("dtmf")
        .and_then(|y| number(y, "dtmf", cx.p))
        .unwrap_or(0) as usize;
    let timeout_ms = m
        .get("timeout_ms")
        .and_then(|y| number(y, "timeout_ms", cx.p));
    let barge_in = m
        .get("barge_in")
        .and_then(|y| boolean(y, "barge_in", cx.p))
        .unwrap_or(true);
    let no_input = m
        .get("no_input")
        .map(|y| cx.speeches(y, "no_input"))
        .unwrap_or_default();
    let no_match = m
        .get("no_match")
        .map(|y| cx.speeches(y, "no_match"))
        .unwrap_or_default();
    let fail = m.get("fail").and_then(|y| cx.reference(y, "fail"));
    let confirm = m.get("confirm").and_then(|y| boolean(y, "confirm", cx.p));
    let other = m.get("other").and_then(|y| cx.reference(y, "other"));
    if other.is_some() && slot.is_none() {
        cx.p.add(
            m.pos,
            "`other` takes requests at an ask for a slot: this ask already takes intents",
            "add `slot:` or remove `other:` (its `next` already sees the intent)",
        );
    }
    if confirm.is_some() && slot.is_none() {
        cx.p.add(
            m.pos,
            "`confirm` reads a slot's value back: this ask fills no slot",
            "add `slot:` or remove `confirm:`",
        );
    }
    if slot.is_some() && !intents.is_empty() {
        cx.p.add(
            m.pos,
            "an ask fills a slot or expects intents, not both",
            "split it into two asks",
        );
    }
    m.finish(&[], cx.p);
    Some(Ask {
        prompt: prompt?,
        slot,
        intents,
        kb,
        dtmf_max,
        timeout_ms,
        barge_in,
        no_input,
        no_match,
        fail,
        other,
        confirm,
    })
}
