//! Slot values: what a caller's words or keys mean for a slot of each type, the values a
//! sentence holds for slots the flow has not asked for yet, and how a value is read back.

use super::model::{Language, SlotDef, SlotKind};
use crate::nlu::dates::{self, Date};
use crate::nlu::{lexical::words, slots};

/// The value `input` gives a slot of `kind`: said (`typed` false) or keyed (`typed` true).
/// Keys: digits for numbers, phones and codes; `*` as the decimal point for money; `1` yes
/// and `2` no; YYYYMMDD for a date and HHMM for a time.
pub fn value(kind: &SlotKind, input: &str, typed: bool, today: Date) -> Option<String> {
    if typed {
        return keyed(kind, input);
    }
    match kind {
        SlotKind::Digits { min, max } => {
            slots::digits(input).filter(|d| (*min..=*max).contains(&d.len()))
        }
        SlotKind::YesNo => slots::yes_no(input).map(|b| if b { "yes" } else { "no" }.into()),
        SlotKind::Date { tense } => dates::date(input, today, *tense).map(|d| d.to_string()),
        SlotKind::Time => dates::time(input).map(|(h, m)| format!("{h:02}:{m:02}")),
        SlotKind::Money => slots::money(input),
        SlotKind::Phone => slots::phone(input),
        SlotKind::Code { min, max } => slots::code(input, *min, *max),
        SlotKind::Rating { max } => slots::rating(input, *max).map(|n| n.to_string()),
    }
}

fn keyed(kind: &SlotKind, keys: &str) -> Option<String> {
    let digits = || keys.chars().all(|c| c.is_ascii_digit()) && !keys.is_empty();
    match kind {
        SlotKind::Digits { min, max } | SlotKind::Code { min, max } => {
            (digits() && (*min..=*max).contains(&keys.len())).then(|| keys.to_string())
        }
        SlotKind::Phone => (digits() && (7..=15).contains(&keys.len())).then(|| keys.to_string()),
        SlotKind::YesNo => match keys {
            "1" => Some("yes".into()),
            "2" => Some("no".into()),
            _ => None,
        },
        SlotKind::Rating { max } => keys
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=*max).contains(n) && digits())
            .map(|n| n.to_string()),
        SlotKind::Money => {
            let (units, cents) = keys.split_once('*').unwrap_or((keys, "00"));
            let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
            (ok(units) && ok(cents) && cents.len() <= 2)
                .then(|| format!("{}.{cents:0<2}", units.trim_start_matches('0').max("0")))
                .map(|v| {
                    if v.starts_with('.') {
                        format!("0{v}")
                    } else {
                        v
                    }
                })
        }
        SlotKind::Date { .. } if digits() && keys.len() == 8 => Date::new(
            keys[..4].parse().ok()?,
            keys[4..6].parse().ok()?,
            keys[6..].parse().ok()?,
        )
        .map(|d| d.to_string()),
        SlotKind::Time if digits() && keys.len() == 4 => {
            let (h, m): (u32, u32) = (keys[..2].parse().ok()?, keys[2..].parse().ok()?);
            (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
        }
        SlotKind::Date { .. } | SlotKind::Time => None,
    }
}

/// The values one sentence gives slots the flow has not asked for yet ("where is order
/// 472198" fills `order_number` before the ask for it). A number fills a number-like slot
/// (digits, phone, code) only when it is one number of the right length; when it would fit
/// two such slots, the slot whose name the caller used ("order", "phone") takes it, and
/// without such a word neither does: a wrong value skipped past its question is worse than
/// asking.
pub fn heard_anywhere<'a>(
    defs: impl Iterator<Item = &'a SlotDef>,
    text: &str,
    today: Date,
) -> Vec<(String, String)> {
    let said = words(text);
    let named = |slot: &str| {
        slot.split('_')
            .filter(|w| w.len() > 2 && !matches!(*w, "number" | "code" | "the"))
            .any(|w| said.iter().any(|s| s == w))
    };
    let runs = slots::digit_runs(text);
    let mut numbers: Vec<(String, String)> = Vec::new();
    let mut others = Vec::new();
    for def in defs.filter(|d| d.kind.heard_anywhere()) {
        let v = match &def.kind {
            SlotKind::Digits { min, max } => {
                let fits: Vec<&String> = runs
                    .iter()
                    .filter(|r| (*min..=*max).contains(&r.len()))
                    .collect();
                match fits.as_slice() {
                    [one] => Some((*one).clone()),
                    _ => None,
                }
            }
            SlotKind::Phone => {
                let fits: Vec<&String> = runs
                    .iter()
                    .filter(|r| (7..=15).contains(&r.len()))
                    .collect();
                let plus = text.contains('+') || said.iter().any(|w| w == "plus");
                match fits.as_slice() {
                    [one] => slots::phone(&format!("{}{one}", if plus { "+" } else { "" })),
                    _ => None,
                }
            }
            // A code needs a letter in it here: a bare number is the number slots' to take.
            SlotKind::Code { .. } => value(&def.kind, text, false, today)
                .filter(|v| v.chars().any(|c| c.is_ascii_alphabetic())),
            other => {
                if let Some(v) = value(other, text, false, today) {
                    others.push((def.name.clone(), v));
                }
                continue;
            }
        };
        if let Some(v) = v {
            numbers.push((def.name.clone(), v));
        }
    }
    if numbers.len() > 1 {
        numbers.retain(|(name, _)| named(name));
        if numbers.len() > 1 {
            numbers.clear();
        }
    }
    numbers.extend(others);
    numbers
}

/// How a value is read back to the caller: numbers and codes character by character, dates
/// and times in words the voice reads well.
pub fn spoken(kind: &SlotKind, value: &str, language: Language) -> String {
    let by_character = |v: &str| {
        v.chars()
            .map(|c| match c {
                '+' if language == Language::Mandarin => "加".to_string(),
                '+' => "plus".to_string(),
                c => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match kind {
        SlotKind::Digits { .. } | SlotKind::Phone | SlotKind::Code { .. } => by_character(value),
        SlotKind::Date { .. } => match Date::parse(value) {
            Some(d) if language == Language::Mandarin => {
                format!("{}年{}月{}日", d.year, d.month, d.day)
            }
            Some(d) => format!(
                "{} the {} of {} {}",
                capitalised(dates::WEEKDAYS[d.weekday() as usize]),
                ordinal(d.day),
                capitalised(dates::MONTHS[d.month as usize - 1]),
                d.year
            ),
            None => value.to_string(),
        },
        SlotKind::Time => {
            let (h, m) = value.split_once(':').unwrap_or((value, "00"));
            let (h, m): (u32, u32) = (h.parse().unwrap_or(0), m.parse().unwrap_or(0));
            if language == Language::Mandarin {
                return format!("{h}点{m:02}分");
            }
            let (h12, half) = match h {
                0 => (12, "a.m."),
                12 => (12, "p.m."),
                h if h > 12 => (h - 12, "p.m."),
                h => (h, "a.m."),
            };
            if m == 0 {
                format!("{h12} {half}")
            } else {
                format!("{h12}:{m:02} {half}")
            }
        }
        SlotKind::Money | SlotKind::YesNo | SlotKind::Rating { .. } => value.to_string(),
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Which of two offered options an answer points at by position: 0 for "the first one",
/// "one", "the former" or key 1; 1 for "the second", "the other one", "the latter", "the
/// last" or key 2. None when it names neither by position (the caller may have named one by
/// its topic, or asked for something else).
pub fn which_of_two(text: &str) -> Option<usize> {
    let lowered = text.to_lowercase();
    let cjk: String = lowered.chars().filter(|c| !c.is_whitespace()).collect();
    if cjk.contains("第一") || cjk.contains("前者") || cjk.contains("前面") {
        return Some(0);
    }
    if cjk.contains("第二") || cjk.contains("后者") || cjk.contains("后面") {
        return Some(1);
    }
    let words = crate::nlu::lexical::words(&lowered);
    // A choice by position is a short answer ("I mean the second one"); a longer one says
    // something else ("is it free if I order 2, the last one took a week").
    if words.len() > 6 {
        return None;
    }
    let has = |w: &str| words.iter().any(|x| x == w);
    // A bare number counts only in a very short answer ("one", "number two"): "the one
    // about shipping" names an option by its topic, not by position.
    let short = words.len() <= 3;
    let second = has("second")
        || has("latter")
        || has("last")
        || has("other")
        || short && (has("2") || has("two"));
    let first = has("first") || has("former") || short && (has("1") || has("one")) && !second;
    match (first, second) {
        (true, false) => Some(0),
        (false, true) => Some(1),
        _ => None,
    }
}

/// Whether an answer to "X or Y?" turns both down ("neither", "no, I want ...", "都不是").
pub fn refuses_both(text: &str) -> bool {
    let words = crate::nlu::lexical::words(text);
    let joined: String = words.concat();
    matches!(
        words.first().map(String::as_str),
        Some("no" | "nope" | "neither" | "none" | "nah")
    ) || words.iter().any(|w| w == "neither" || w == "nor")
        || joined.contains("都不")
        || joined.starts_with("不是")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::yaml::Pos;
    use crate::nlu::dates::Tense;

    fn today() -> Date {
        Date::new(2026, 12, 2).unwrap()
    }

    fn def(name: &str, kind: SlotKind) -> SlotDef {
        SlotDef {
            name: name.into(),
            kind,
            pos: Pos::default(),
        }
    }

    #[test]
    fn keys_for_every_type() {
        let k = |kind: SlotKind, keys: &str| value(&kind, keys, true, today());
        assert_eq!(
            k(SlotKind::Digits { min: 6, max: 10 }, "472198").as_deref(),
            Some("472198")
        );
        assert_eq!(k(SlotKind::Digits { min: 6, max: 10 }, "4721"), None);
        assert_eq!(k(SlotKind::Money, "25*5").as_deref(), Some("25.50"));
        assert_eq!(k(SlotKind::Money, "120").as_deref(), Some("120.00"));
        assert_eq!(k(SlotKind::Money, "0*75").as_deref(), Some("0.75"));
        assert_eq!(
            k(
                SlotKind::Date {
                    tense: Tense::Either
                },
                "20270503"
            )
            .as_deref(),
            Some("2027-05-03")
        );
        assert_eq!(
            k(
                SlotKind::Date {
                    tense: Tense::Either
                },
                "20270231"
            ),
            None
        );
        assert_eq!(k(SlotKind::Time, "1530").as_deref(), Some("15:30"));
        assert_eq!(k(SlotKind::Time, "2561"), None);
        assert_eq!(k(SlotKind::YesNo, "1").as_deref(), Some("yes"));
        assert_eq!(
            k(SlotKind::Phone, "02071234567").as_deref(),
            Some("02071234567")
        );
    }

    #[test]
    fn a_first_sentence_fills_the_slots_it_names() {
        let defs = [
            def("order_number", SlotKind::Digits { min: 6, max: 10 }),
            def("confirm", SlotKind::YesNo),
            def(
                "delivery_date",
                SlotKind::Date {
                    tense: Tense::Future,
                },
            ),
        ];
        assert_eq!(
            heard_anywhere(defs.iter(), "where is order 472198", today()),
            vec![("order_number".to_string(), "472198".to_string())]
        );
        assert_eq!(
            heard_anywhere(
                defs.iter(),
                "yes, can order four seven two one nine eight come next Tuesday",
                today()
            ),
            vec![
                ("order_number".to_string(), "472198".to_string()),
                ("delivery_date".to_string(), "2026-12-08".to_string())
            ],
            "a yes is no answer to a question not asked"
        );
        assert!(heard_anywhere(defs.iter(), "I ordered 2 things", today()).is_empty());
        // Two numbers of the order's length: which one is not known, so neither.
        assert!(heard_anywhere(defs.iter(), "is it 472198 or 472199", today()).is_empty());
    }

    #[test]
    fn a_number_that_fits_two_slots_goes_to_the_one_named() {
        let defs = [
            def("order_number", SlotKind::Digits { min: 6, max: 10 }),
            def("phone", SlotKind::Phone),
        ];
        assert_eq!(
            heard_anywhere(defs.iter(), "my phone is 07700 900123", today()),
            vec![("phone".to_string(), "07700900123".to_string())]
        );
        assert_eq!(
            heard_anywhere(defs.iter(), "order 47219855", today()),
            vec![("order_number".to_string(), "47219855".to_string())]
        );
        assert!(heard_anywhere(defs.iter(), "it's 47219855", today()).is_empty());
    }

    #[test]
    fn an_option_is_chosen_by_position() {
        for first in [
            "the first one",
            "first",
            "one",
            "number one",
            "the former",
            "1",
            "I mean the first one please",
            "第一个",
        ] {
            assert_eq!(which_of_two(first), Some(0), "{first}");
        }
        for second in [
            "the second one",
            "the other one",
            "the latter please",
            "two",
            "the last one",
            "第二个",
            "后者",
        ] {
            assert_eq!(which_of_two(second), Some(1), "{second}");
        }
        for neither in [
            "the one about shipping",
            "neither, I want to talk to someone",
            "how much is delivery",
            "is it free if I order 2, the last one took a week",
            "what about 1 item",
        ] {
            assert_eq!(which_of_two(neither), None, "{neither}");
        }
        for refusal in [
            "neither",
            "no, where is my order",
            "none of those",
            "都不是",
        ] {
            assert!(refuses_both(refusal), "{refusal}");
        }
        for pick in [
            "shipping costs",
            "the delivery time",
            "not sure, how long it takes",
        ] {
            assert!(!refuses_both(pick), "{pick}");
        }
    }

    #[test]
    fn values_are_read_back_as_the_voice_reads_them() {
        let en = Language::English;
        assert_eq!(
            spoken(&SlotKind::Digits { min: 1, max: 9 }, "472198", en),
            "4 7 2 1 9 8"
        );
        assert_eq!(spoken(&SlotKind::Phone, "+4420", en), "plus 4 4 2 0");
        assert_eq!(
            spoken(
                &SlotKind::Date {
                    tense: Tense::Either
                },
                "2026-12-08",
                en
            ),
            "Tuesday the 8th of December 2026"
        );
        assert_eq!(spoken(&SlotKind::Time, "15:30", en), "3:30 p.m.");
        assert_eq!(spoken(&SlotKind::Time, "09:00", en), "9 a.m.");
        assert_eq!(
            spoken(
                &SlotKind::Date {
                    tense: Tense::Either
                },
                "2026-12-08",
                Language::Mandarin
            ),
            "2026年12月8日"
        );
    }
}
