//! Text preparation for the voice: numbers written the way a person reads them on the phone, and
//! replies split into clauses so the first audio is ready before the whole reply is synthesised.
//!
//! - Order numbers, account numbers and other long digit strings (5+ digits, a leading zero, or mixed
//!   with letters) are read digit by digit: "4721 9" -> "four seven two one nine". Phone numbers keep
//!   a short pause between groups.
//! - Amounts are read naturally: "$12.50" -> "twelve dollars and fifty cents".
//! - Times: "3:30 pm" -> "three thirty p m", "9:00" -> "nine o'clock", "14:05" -> "two oh five p m".
//! - Percentages, ordinals ("1st"), grouped numbers ("10,000") and short integers become words.
//!
//! espeak-ng would otherwise read "47219" as "forty-seven thousand two hundred nineteen", which is
//! useless to a caller who has to type it back.

use std::sync::OnceLock;

use regex::{Captures, Regex};

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Cardinal words for `n` ("4721" -> "four thousand seven hundred twenty-one").
pub fn cardinal(n: u64) -> String {
    fn below_thousand(n: u64) -> String {
        let (h, rest) = (n / 100, n % 100);
        let tail = match rest {
            0 => String::new(),
            1..=19 => ONES[rest as usize].to_string(),
            _ if rest % 10 == 0 => TENS[(rest / 10) as usize].to_string(),
            _ => format!(
                "{}-{}",
                TENS[(rest / 10) as usize],
                ONES[(rest % 10) as usize]
            ),
        };
        match (h, tail.is_empty()) {
            (0, _) => tail,
            (_, true) => format!("{} hundred", ONES[h as usize]),
            (_, false) => format!("{} hundred {tail}", ONES[h as usize]),
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let scales = [
        (1_000_000_000_000, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut parts = Vec::new();
    let mut rest = n;
    for (size, name) in scales {
        if rest >= size {
            parts.push(format!("{} {name}", cardinal(rest / size)));
            rest %= size;
        }
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    parts.join(" ")
}

/// Ordinal words ("21" -> "twenty-first").
pub fn ordinal(n: u64) -> String {
    let words = cardinal(n);
    let (head, last) = match words.rfind([' ', '-']) {
        Some(i) => words.split_at(i + 1),
        None => ("", words.as_str()),
    };
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// Each digit as a word, letters spelled out, other characters dropped: "A12-0" -> "A one two zero".
pub fn spell_out(token: &str) -> String {
    token
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(ONES[c as usize - '0' as usize].to_string()),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_uppercase().to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An identifier read the way agents read order numbers back: a short pause before it, then
/// characters in groups of three with a pause between groups ("47219" -> ", four seven two, one
/// nine"); a last group of one joins the group before it. Callers can follow and type along, and
/// the pauses keep "is four" from running together into "is for".
pub fn spell_grouped(token: &str) -> String {
    let chars: Vec<String> = spell_out(token).split(' ').map(str::to_string).collect();
    let mut groups: Vec<Vec<String>> = chars.chunks(3).map(|c| c.to_vec()).collect();
    if groups.len() > 1 && groups.last().is_some_and(|g| g.len() == 1) {
        let last = groups.pop().expect("checked above");
        groups.last_mut().expect("checked above").extend(last);
    }
    let spoken: Vec<String> = groups.iter().map(|g| g.join(" ")).collect();
    format!(", {}", spoken.join(", "))
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("normaliser patterns are valid"))
}

fn parse_grouped(s: &str) -> Option<u64> {
    s.replace(',', "").parse().ok()
}

fn amount(c: &Captures<'_>) -> String {
    let (major_one, major_many, minor_one, minor_many) = match &c[1] {
        "$" => ("dollar", "dollars", "cent", "cents"),
        "€" => ("euro", "euros", "cent", "cents"),
        "£" => ("pound", "pounds", "penny", "pence"),
        _ => ("yuan", "yuan", "fen", "fen"),
    };
    let Some(major) = parse_grouped(&c[2]) else {
        return c[0].to_string();
    };
    // "12.5" means 50 cents, not 5.
    let minor = c.get(3).map_or(0, |m| {
        let digits = m.as_str();
        let v: u64 = digits.parse().unwrap_or(0);
        if digits.len() == 1 { v * 10 } else { v }
    });
    let unit = |n: u64, one: &str, many: &str| {
        format!("{} {}", cardinal(n), if n == 1 { one } else { many })
    };
    match (major, minor) {
        (_, 0) => unit(major, major_one, major_many),
        (0, _) => unit(minor, minor_one, minor_many),
        _ => format!(
            "{} and {}",
            unit(major, major_one, major_many),
            unit(minor, minor_one, minor_many)
        ),
    }
}

fn time(c: &Captures<'_>) -> String {
    let (Ok(h), Ok(m)) = (c[1].parse::<u32>(), c[2].parse::<u32>()) else {
        return c[0].to_string();
    };
    if h > 23 || m > 59 {
        return c[0].to_string();
    }
    let marker = c
        .get(3)
        .map(|s| s.as_str().to_ascii_lowercase().replace('.', ""));
    let (h12, suffix) = match marker.as_deref() {
        Some(am_pm) => (h, Some(if am_pm == "am" { "a m" } else { "p m" })),
        None if h == 0 => (12, Some("a m")),
        None if h > 12 => (h - 12, Some("p m")),
        None => (h, None),
    };
    let minutes = match m {
        0 if suffix.is_none() => "o'clock".to_string(),
        0 => String::new(),
        1..=9 => format!("oh {}", ONES[m as usize]),
        _ => cardinal(m as u64),
    };
    [
        cardinal(h12 as u64),
        minutes,
        suffix.unwrap_or_default().to_string(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

fn decimal(int: &str, frac: &str) -> String {
    let whole = int.parse().map(cardinal).unwrap_or_else(|_| spell_out(int));
    format!("{whole} point {}", spell_out(frac))
}

/// Rewrites numbers, amounts and times into words as a person would read them on the phone.
pub fn normalize(text: &str) -> String {
    static AMOUNT: OnceLock<Regex> = OnceLock::new();
    static TIME: OnceLock<Regex> = OnceLock::new();
    static PERCENT: OnceLock<Regex> = OnceLock::new();
    static ORDINAL: OnceLock<Regex> = OnceLock::new();
    static PHONE: OnceLock<Regex> = OnceLock::new();
    static GROUPED: OnceLock<Regex> = OnceLock::new();
    static IDENT: OnceLock<Regex> = OnceLock::new();
    static DECIMAL: OnceLock<Regex> = OnceLock::new();
    static INTEGER: OnceLock<Regex> = OnceLock::new();

    let t = re(
        &AMOUNT,
        r"([$€£¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\b",
    )
    .replace_all(text, |c: &Captures<'_>| amount(c));
    let t = re(&TIME, r"(?i)\b(\d{1,2}):(\d{2})(?:\s*([ap]m\b|[ap]\.m\.))?").replace_all(
        &t,
        |c: &Captures<'_>| {
            // "a.m." at the end of a sentence also ends the sentence: keep that full stop.
            let rest = &t[c.get(0).map_or(0, |m| m.end())..];
            let ends_sentence = c.get(3).is_some_and(|m| m.as_str().ends_with('.'))
                && (rest.trim().is_empty() || rest.trim_start().starts_with(char::is_uppercase));
            time(c) + if ends_sentence { "." } else { "" }
        },
    );
    let t = re(&PERCENT, r"\b(\d+)(?:\.(\d+))?\s?%").replace_all(&t, |c: &Captures<'_>| {
        let n = match c.get(2) {
            Some(frac) => decimal(&c[1], frac.as_str()),
            None => c[1]
                .parse()
                .map(cardinal)
                .unwrap_or_else(|_| spell_out(&c[1])),
        };
        format!("{n} percent")
    });
    let t = re(&ORDINAL, r"\b(\d{1,6})(?:st|nd|rd|th)\b").replace_all(&t, |c: &Captures<'_>| {
        c[1].parse()
            .map(ordinal)
            .unwrap_or_else(|_| c[0].to_string())
    });
    // Phone numbers: groups of digits joined by dashes or dots, read digit by digit, group by group.
    let t = re(&PHONE, r"\b\d{2,4}(?:[-.]\d{2,4}){1,3}\b").replace_all(&t, |c: &Captures<'_>| {
        c[0].split(['-', '.'])
            .map(spell_out)
            .collect::<Vec<_>>()
            .join(", ")
    });
    let t = re(&GROUPED, r"\b\d{1,3}(?:,\d{3})+\b").replace_all(&t, |c: &Captures<'_>| {
        parse_grouped(&c[0])
            .map(cardinal)
            .unwrap_or_else(|| c[0].to_string())
    });
    // Identifiers: digit strings of 5+ digits, with a leading zero, or mixed with letters.
    // The match includes the whitespace before it, which becomes the pause.
    let after_word = |start: usize| t[..start].chars().last().is_some_and(char::is_alphanumeric);
    let t = re(
        &IDENT,
        r"\s*\b(?:[A-Za-z]+\d[A-Za-z\d]*|\d+[A-Za-z][A-Za-z\d]*|0\d+|\d{5,})\b",
    )
    .replace_all(&t, |c: &Captures<'_>| {
        let m = c.get(0).expect("group 0 always matches");
        let spoken = spell_grouped(m.as_str().trim_start());
        match (m.start(), after_word(m.start())) {
            (0, _) => spoken.trim_start_matches(", ").to_string(),
            (_, true) => spoken,
            (_, false) => format!(" {}", spoken.trim_start_matches(", ")),
        }
    });
    let t =
        re(&DECIMAL, r"\b(\d+)\.(\d+)\b").replace_all(&t, |c: &Captures<'_>| decimal(&c[1], &c[2]));
    let t = re(&INTEGER, r"\b\d{1,4}\b").replace_all(&t, |c: &Captures<'_>| {
        c[0].parse()
            .map(cardinal)
            .unwrap_or_else(|_| c[0].to_string())
    });
    t.into_owned()
}

/// One piece of a reply, synthesised on its own, followed by a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Text including its closing punctuation (which shapes the intonation).
    pub text: String,
    /// Silence after it: longer after a sentence than after a comma.
    pub pause_ms: u32,
}

/// Pause after a comma, semicolon or colon.
pub const CLAUSE_PAUSE_MS: u32 = 180;
/// Pause after a full stop, question or exclamation mark.
pub const SENTENCE_PAUSE_MS: u32 = 350;
/// Fragments shorter than this many words are joined to the next clause, so "Yes," is not a
/// separate, oddly intoned synthesis.
const MIN_CLAUSE_WORDS: usize = 3;

/// Splits (already normalised) text into clauses at punctuation. The last clause has no pause.
pub fn split_clauses(text: &str) -> Vec<Clause> {
    let mut clauses: Vec<Clause> = Vec::new();
    let mut current = String::new();
    let mut pending_short = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        current.push(ch);
        let at_boundary = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        let pause = match ch {
            '.' | '?' | '!' if at_boundary => SENTENCE_PAUSE_MS,
            ',' | ';' | ':' if at_boundary => CLAUSE_PAUSE_MS,
            _ => continue,
        };
        let piece = current.trim().to_string();
        current.clear();
        if piece.chars().all(|c| !c.is_alphanumeric()) {
            continue;
        }
        if pending_short {
            // Join to the previous short fragment.
            let last = clauses.last_mut().expect("a pending fragment exists");
            last.text.push(' ');
            last.text.push_str(&piece);
            last.pause_ms = pause;
        } else {
            clauses.push(Clause {
                text: piece,
                pause_ms: pause,
            });
        }
        let words = clauses
            .last()
            .map_or(0, |c| c.text.split_whitespace().count());
        pending_short = pause == CLAUSE_PAUSE_MS && words < MIN_CLAUSE_WORDS;
    }
    let rest = current.trim();
    if rest.chars().any(|c| c.is_alphanumeric()) {
        match clauses.last_mut() {
            Some(last) if pending_short => {
                last.text.push(' ');
                last.text.push_str(rest);
            }
            _ => clauses.push(Clause {
                text: rest.to_string(),
                pause_ms: 0,
            }),
        }
    }
    if let Some(last) = clauses.last_mut() {
        last.pause_ms = 0;
    }
    clauses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals_and_ordinals() {
        assert_eq!(cardinal(0), "zero");
        assert_eq!(cardinal(21), "twenty-one");
        assert_eq!(cardinal(100), "one hundred");
        assert_eq!(cardinal(4721), "four thousand seven hundred twenty-one");
        assert_eq!(cardinal(1_000_015), "one million fifteen");
        assert_eq!(ordinal(1), "first");
        assert_eq!(ordinal(22), "twenty-second");
        assert_eq!(ordinal(30), "thirtieth");
        assert_eq!(ordinal(12), "twelfth");
    }

    #[test]
    fn order_numbers_are_read_digit_by_digit() {
        assert_eq!(
            normalize("Order 47219 has shipped."),
            "Order, four seven two, one nine has shipped."
        );
        assert_eq!(
            normalize("Order JD2024X"),
            "Order, J D two, zero two four X"
        );
        assert_eq!(normalize("code 0042"), "code, zero zero four two");
        assert_eq!(
            normalize("1234567 is it"),
            "one two three, four five six seven is it"
        );
        assert_eq!(
            normalize("Call 400-820-8820 now"),
            "Call four zero zero, eight two zero, eight eight two zero now"
        );
    }

    #[test]
    fn amounts_times_and_quantities_are_read_naturally() {
        assert_eq!(
            normalize("It costs $12.50."),
            "It costs twelve dollars and fifty cents."
        );
        assert_eq!(normalize("$1"), "one dollar");
        assert_eq!(normalize("$0.99"), "ninety-nine cents");
        assert_eq!(normalize("€2.5"), "two euros and fifty cents");
        assert_eq!(
            normalize("$1,250"),
            "one thousand two hundred fifty dollars"
        );
        assert_eq!(normalize("¥30"), "thirty yuan");
        assert_eq!(
            normalize("from 9:00 to 17:30"),
            "from nine o'clock to five thirty p m"
        );
        assert_eq!(normalize("at 3:05 pm"), "at three oh five p m");
        assert_eq!(normalize("at 10:00 a.m."), "at ten a m.");
        assert_eq!(normalize("at 10:00 a.m. tomorrow"), "at ten a m tomorrow");
        assert_eq!(normalize("by 5:00 pm."), "by five p m.");
        assert_eq!(normalize("within 3 days"), "within three days");
        assert_eq!(normalize("15% off"), "fifteen percent off");
        assert_eq!(normalize("the 2nd item"), "the second item");
        assert_eq!(normalize("10,000 points"), "ten thousand points");
        assert_eq!(normalize("2.5 kg"), "two point five kg");
        assert_eq!(normalize("no digits here"), "no digits here");
    }

    #[test]
    fn clauses_split_at_punctuation_with_pauses() {
        let c = split_clauses(
            "Thanks for calling. Your order has shipped, and it arrives tomorrow. Anything else?",
        );
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Thanks for calling.",
                "Your order has shipped,",
                "and it arrives tomorrow.",
                "Anything else?"
            ]
        );
        let pauses: Vec<u32> = c.iter().map(|c| c.pause_ms).collect();
        assert_eq!(
            pauses,
            vec![SENTENCE_PAUSE_MS, CLAUSE_PAUSE_MS, SENTENCE_PAUSE_MS, 0]
        );
    }

    #[test]
    fn short_fragments_join_the_next_clause() {
        let c = split_clauses("Yes, your refund is on its way");
        assert_eq!(
            c,
            vec![Clause {
                text: "Yes, your refund is on its way".into(),
                pause_ms: 0
            }]
        );
        assert!(split_clauses("").is_empty());
        assert!(split_clauses(" ... ").is_empty());
        assert_eq!(split_clauses("Hello")[0].text, "Hello");
    }
}
