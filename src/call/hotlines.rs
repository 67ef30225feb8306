//! The hotlines one server answers, chosen by the number the caller dialled.
//!
//! Each hotline has its own dialplan (reloaded on its own), voice and recognizer settings;
//! the engines behind them are shared where the settings agree (one Piper voice, one Whisper
//! per language), all on the one core budget.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::driver::Services;

/// Hotlines by dialled number, with an optional default for numbers not listed.
pub struct Hotlines {
    all: Vec<Arc<Services>>,
    /// Dialled number (cleaned, `sip::identity::clean_dialled`) -> index in `all`.
    numbers: BTreeMap<String, usize>,
    default: Option<usize>,
}

/// Why a set of hotlines cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HotlinesError {
    #[error("no hotline: give a dialplan (a default) or numbers with theirs")]
    Empty,
    /// The admin API, the records and the statistics tell hotlines apart by name.
    #[error(
        "two dialplans are both named `{0}`; hotlines on one server need different names (the records and the admin API tell them apart by name)"
    )]
    SameName(String),
}

impl Hotlines {
    /// `numbers` and `default` index into `all`.
    pub fn new(
        all: Vec<Arc<Services>>,
        numbers: BTreeMap<String, usize>,
        default: Option<usize>,
    ) -> Result<Self, HotlinesError> {
        if all.is_empty() {
            return Err(HotlinesError::Empty);
        }
        let mut names = BTreeSet::new();
        for s in &all {
            let name = s.registry.current().plan.name.clone();
            if !names.insert(name.clone()) {
                return Err(HotlinesError::SameName(name));
            }
        }
        debug_assert!(numbers.values().chain(&default).all(|&i| i < all.len()));
        Ok(Self {
            all,
            numbers,
            default,
        })
    }

    /// The hotline that answers `dialled`: its own, else the default.
    pub fn for_number(&self, dialled: Option<&str>) -> Option<&Arc<Services>> {
        dialled
            .and_then(|d| self.numbers.get(d))
            .or(self.default.as_ref())
            .map(|&i| &self.all[i])
    }

    /// The numbers the SIP endpoint answers: None (all of them) with a default hotline.
    pub fn numbers_answered(&self) -> Option<BTreeSet<String>> {
        match self.default {
            Some(_) => None,
            None => Some(self.numbers.keys().cloned().collect()),
        }
    }

    /// Every hotline, each once.
    pub fn all(&self) -> &[Arc<Services>] {
        &self.all
    }

    /// The numbers that reach the hotline at `index` in `all` ("default" for the default).
    pub fn numbers_of(&self, index: usize) -> Vec<String> {
        let mut numbers: Vec<String> = self
            .numbers
            .iter()
            .filter(|(_, i)| **i == index)
            .map(|(n, _)| n.clone())
            .collect();
        if self.default == Some(index) {
            numbers.push("default".into());
        }
        numbers
    }
}
