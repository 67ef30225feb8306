//! Slot values from what callers say (or type): numbers spoken digit by digit ("four seven two
//! one"), in groups ("forty-seven twenty-one"), with "oh", "double"/"triple", as digits
//! ("4721"), or in Mandarin digits ("四七二一"); phone numbers; amounts of money; codes of
//! letters and digits spelled out ("A B one two", "alpha bravo 12"); yes/no in many wordings;
//! and keypad input. Dates and times are in `dates`.

use super::lexical::words;

fn unit(w: &str) -> Option<u32> {
    Some(match w {
        "zero" | "oh" | "o" | "nought" => 0,
        "one" => 1,
        "two" | "to" | "too" => 2,
        "three" => 3,
        "four" | "for" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

fn teen(w: &str) -> Option<u32> {
    let t = [
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
    t.iter().position(|x| *x == w).map(|i| 10 + i as u32)
}

fn tens(w: &str) -> Option<u32> {
    let t = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    t.iter().position(|x| *x == w).map(|i| 20 + 10 * i as u32)
}

fn chinese_digit(c: char) -> Option<char> {
    let d = match c {
        '零' | '〇' => '0',
        '一' | '幺' => '1',
        '二' | '两' => '2',
        '三' => '3',
        '四' => '4',
        '五' => '5',
        '六' => '6',
        '七' => '7',
        '八' => '8',
        '九' => '9',
        _ => return None,
    };
    Some(d)
}

/// A score from 1 to `max` said as an answer to a survey question: "four", "5", "I'd give
/// you a four", "four out of five", "4 stars", "五分". One score only: "three or four" is not
/// an answer; a number above `max` is not either.
pub fn rating(text: &str, max: u32) -> Option<u32> {
    let lowered = text.to_lowercase();
    // Mandarin: a single digit character (or 十) anywhere, e.g. 五分, 给四星.
    let cjk: Vec<u32> = lowered
        .chars()
        .filter_map(|c| match c {
            '十' => Some(10),
            c => chinese_digit(c).and_then(|d| d.to_digit(10)),
        })
        .collect();
    let ws = words(&lowered.replace('/', " out of ").replace('-', " "));
    let mut numbers: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < ws.len() {
        let w = ws[i].as_str();
        let n = (w.parse::<u32>().ok())
            .or_else(|| unit(w).filter(|_| !matches!(w, "to" | "too" | "for" | "o" | "oh")))
            .or_else(|| teen(w));
        if let Some(n) = n {
            numbers.push(n);
            // "four out of five": the scale is not the score.
            if ws.get(i + 1).map(String::as_str) == Some("out")
                && ws.get(i + 2).map(String::as_str) == Some("of")
            {
                i += 4;
                continue;
            }
        }
        i += 1;
    }
    numbers.extend(cjk);
    match numbers.as_slice() {
        [n] if (1..=max).contains(n) => Some(*n),
        _ => None,
    }
}

/// The digits a caller said or typed, in order ("my order is forty-seven twenty-one" ->
/// "4721"). Words that are not numbers are skipped; "to"/"for" count as digits only between
/// other digits, so "I want to check order four five" gives "45".
pub fn digits(text: &str) -> Option<String> {
    let ws: Vec<String> = words(&text.replace('-', " "));
    let mut out = String::new();
    let mut i = 0;
    let is_numeric = is_number_word;
    while i < ws.len() {
        let w = ws[i].as_str();
        // Homophones only inside a run of numbers.
        let inside = i > 0 && i + 1 < ws.len() && is_numeric(&ws[i - 1]) && is_numeric(&ws[i + 1]);
        if !(is_numeric(w) || inside && unit(w).is_some()) {
            i += 1;
            continue;
        }
        if w.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(w);
        } else if let Some(d) = w.chars().map(chinese_digit).collect::<Option<String>>() {
            out.push_str(&d);
        } else if matches!(w, "double" | "triple") {
            let n = if w == "double" { 2 } else { 3 };
            if let Some(d) = ws.get(i + 1).and_then(|n| unit(n)) {
                out.push_str(&d.to_string().repeat(n));
                i += 1;
            }
        } else if let Some(t) = tens(w) {
            match ws.get(i + 1).and_then(|n| unit(n)).filter(|&d| d > 0) {
                Some(d) => {
                    out.push_str(&(t + d).to_string());
                    i += 1;
                }
                None => out.push_str(&t.to_string()),
            }
        } else if let Some(t) = teen(w) {
            out.push_str(&t.to_string());
        } else if w == "hundred" {
            // "four hundred" -> 400, "four hundred twelve" -> 412.
            if !out.is_empty() {
                if ws.get(i + 1).is_some_and(|w| w == "and") {
                    i += 1; // "four hundred and five"
                }
                let rest = ws.get(i + 1).map(String::as_str).unwrap_or("");
                if teen(rest).is_some() || tens(rest).is_some() {
                    // The next group supplies the last two digits.
                } else if let Some(d) = unit(rest) {
                    out.push('0');
                    out.push_str(&d.to_string());
                    i += 1;
                } else {
                    out.push_str("00");
                }
            }
        } else if w == "thousand" {
            if !out.is_empty() {
                out.push_str("000");
            }
        } else if let Some(d) = unit(w) {
            out.push_str(&d.to_string());
        }
        i += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// Yes (true), no (false), or neither, in the ways callers say them: "yes please", "that's
/// right", "go ahead", "uh-huh"; "no", "nope", "that's wrong", "not quite"; Mandarin 是/对/
/// 好/没错 and 不是/不对. A sentence with both ("no, yes it is") is neither.
pub fn yes_no(text: &str) -> Option<bool> {
    const YES: &[&str] = &[
        "yes",
        "yeah",
        "yea",
        "yep",
        "yup",
        "ya",
        "sure",
        "correct",
        "right",
        "ok",
        "okay",
        "affirmative",
        "absolutely",
        "definitely",
        "exactly",
        "certainly",
        "indeed",
        "uh-huh",
        "uhhuh",
        "mhm",
        "是",
        "对",
        "好",
        "是的",
        "对的",
        "没错",
        "可以",
    ];
    const YES_PHRASES: &[&str] = &[
        "go ahead",
        "that's it",
        "that is it",
        "of course",
        "please do",
        "sounds good",
        "that's the one",
        "you got it",
        "spot on",
        "uh-huh",
        "uh huh",
        "mm-hmm",
    ];
    const NO: &[&str] = &[
        "no",
        "nope",
        "nah",
        "not",
        "wrong",
        "incorrect",
        "negative",
        "don't",
        "isn't",
        "wasn't",
        "never",
        "不",
        "不是",
        "不对",
    ];
    let lowered = text.to_lowercase().replace('’', "'");
    let ws = words(&lowered);
    let joined: String = ws.concat();
    if joined.starts_with("没错") || joined.starts_with("没问题") {
        return Some(true); // "no error", "no problem": agreement
    }
    if joined.starts_with('不') || joined.starts_with("没有") {
        return Some(false); // 不是, 不对: the negation leads in Mandarin
    }
    // "no problem" and "not a problem" agree; "that's not right" does not.
    let cleaned = lowered
        .replace("no problem", "sure")
        .replace("not a problem", "sure");
    let ws = words(&cleaned);
    let no = ws.iter().any(|w| NO.contains(&w.as_str()));
    let yes = ws.iter().any(|w| YES.contains(&w.as_str()))
        || YES_PHRASES.iter().any(|p| cleaned.contains(p))
        || joined.starts_with('是')
        || joined.starts_with('对');
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        // "no, that's not right" has both a no and a "right": the negation wins when it
        // comes first and nothing affirms after it.
        (true, true)
            if ws.first().is_some_and(|w| NO.contains(&w.as_str()))
                && !ws
                    .iter()
                    .skip(1)
                    .any(|w| matches!(w.as_str(), "yes" | "yeah" | "yep")) =>
        {
            Some(false)
        }
        _ => None,
    }
}

/// Whether a word is part of a spoken number ("four", "forty", "double", "4721", "四").
pub fn is_number_word(w: &str) -> bool {
    unit(w).is_some() && !matches!(w, "to" | "too" | "for" | "o")
        || teen(w).is_some()
        || tens(w).is_some()
        || w.chars().all(|c| c.is_ascii_digit())
        || w.chars().all(|c| chinese_digit(c).is_some())
        || matches!(w, "double" | "triple" | "hundred" | "thousand")
}

/// Each run of a number said in a sentence, as digits: "order 472198 and 2 items" ->
/// ["472198", "2"]. Unlike [`digits`], numbers apart in the sentence stay apart, so a value
/// picked out of a request is one number, not every digit in it.
pub fn digit_runs(text: &str) -> Vec<String> {
    let ws = words(&text.replace('-', " "));
    let mut runs = Vec::new();
    let mut start = None;
    for i in 0..=ws.len() {
        let inside = |i: usize| {
            i > 0
                && i + 1 < ws.len()
                && is_number_word(&ws[i - 1])
                && is_number_word(&ws[i + 1])
                && unit(&ws[i]).is_some()
        };
        let numeric = i < ws.len() && (is_number_word(&ws[i]) || inside(i));
        match (numeric, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if let Some(d) = digits(&ws[s..i].join(" ")) {
                    runs.push(d);
                }
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// A phone number: 7 to 15 digits (E.164), "plus" or "00" for the international prefix ->
/// "+442071234567"; a national number stays as said ("02071234567").
pub fn phone(text: &str) -> Option<String> {
    let lowered = text.to_lowercase();
    let plus = lowered.contains('+') || words(&lowered).iter().any(|w| w == "plus");
    let d = digits(&lowered.replace('+', " "))?;
    let (plus, d) = match d.strip_prefix("00") {
        Some(rest) if rest.len() >= 7 => (true, rest.to_string()),
        _ => (plus, d),
    };
    (7..=15)
        .contains(&d.len())
        .then(|| if plus { format!("+{d}") } else { d })
}

/// An amount of money as "units.cents": "$25.50", "twenty five dollars and fifty cents",
/// "25 pounds 50", "a hundred and twenty euros", "fifty cents" -> "0.50", "¥300", "三百元"
/// is not read (Mandarin amounts are left to the keypad). None without a currency word or
/// sign: a bare number is not an amount.
pub fn money(text: &str) -> Option<String> {
    const UNITS: &[&str] = &[
        "dollar", "dollars", "buck", "bucks", "pound", "pounds", "quid", "euro", "euros", "yuan",
        "rmb", "usd", "eur", "gbp",
    ];
    const CENTS: &[&str] = &["cent", "cents", "pence", "p"];
    let lowered = text.to_lowercase().replace(',', "");
    // Written amounts: "$25.50", "25.50 dollars", "£3".
    for token in lowered.split_whitespace() {
        let sign = token.starts_with(['$', '£', '€', '¥']);
        let t = token
            .trim_start_matches(['$', '£', '€', '¥'])
            .trim_end_matches(['.', '?', '!']);
        if let Some((u, c)) = t.split_once('.')
            && !u.is_empty()
            && u.chars().all(|c| c.is_ascii_digit())
            && c.len() == 2
            && c.chars().all(|c| c.is_ascii_digit())
        {
            return Some(format!("{}.{c}", u.parse::<u64>().ok()?));
        }
        if sign && !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
            return Some(format!("{}.00", t.parse::<u64>().ok()?));
        }
    }
    let ws = words(
        &lowered
            .replace('-', " ")
            .replace(" a hundred", " one hundred"),
    );
    let unit_at = ws.iter().position(|w| UNITS.contains(&w.as_str()));
    let cents_at = ws.iter().position(|w| CENTS.contains(&w.as_str()));
    let number_before = |end: usize| -> Option<u64> {
        let mut start = end;
        while start > 0 && (is_number_word(&ws[start - 1]) || ws[start - 1] == "and") {
            start -= 1;
        }
        while start < end && ws[start] == "and" {
            start += 1;
        }
        (start < end).then(|| amount(&ws[start..end])).flatten()
    };
    match (unit_at, cents_at) {
        (Some(u), cents) => {
            let whole = number_before(u)?;
            // "25 dollars 50", "25 dollars and 50 cents".
            let after: Vec<String> = ws[u + 1..]
                .iter()
                .skip_while(|w| *w == "and")
                .take_while(|w| is_number_word(w))
                .cloned()
                .collect();
            let c = match cents {
                Some(c) if c > u => number_before(c),
                _ if !after.is_empty() => amount(&after),
                _ => Some(0),
            }
            .filter(|c| *c < 100)?;
            Some(format!("{whole}.{c:02}"))
        }
        (None, Some(c)) => number_before(c)
            .filter(|c| *c < 100)
            .map(|c| format!("0.{c:02}")),
        (None, None) => None,
    }
}

/// The value of a number said in words: "one hundred and twenty five" -> 125, "twenty
/// five" -> 25, "2500" -> 2500, "two thousand five hundred" -> 2500.
fn amount(ws: &[String]) -> Option<u64> {
    let mut total = 0u64;
    let mut current = 0u64;
    let mut any = false;
    for w in ws {
        let w = w.as_str();
        if w == "and" {
            continue;
        }
        if let Ok(n) = w.parse::<u64>() {
            current += n;
        } else if let Some(n) = unit(w).filter(|_| !matches!(w, "to" | "too" | "for" | "o")) {
            current += u64::from(n);
        } else if let Some(n) = teen(w).or_else(|| tens(w)) {
            current += u64::from(n);
        } else if w == "hundred" {
            current = current.max(1) * 100;
        } else if w == "thousand" {
            total += current.max(1) * 1000;
            current = 0;
        } else {
            return None;
        }
        any = true;
    }
    any.then_some(total + current)
}

/// The NATO alphabet, as callers spell with it.
const NATO: [&str; 26] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "x-ray", "yankee", "zulu",
];

/// A code of letters and digits spelled out ("A B one two", "alpha bravo 12", "AB12", "b as
/// in bravo 7") -> "AB12", `min`..=`max` characters long: the longest run of spelled letters
/// and digits in the text. A lone "a" or "I" opening the run is an article or a pronoun
/// unless the run would be too short without it.
pub fn code(text: &str, min: usize, max: usize) -> Option<String> {
    let lowered = text.to_lowercase().replace("x ray", "x-ray");
    let tokens: Vec<&str> = lowered
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '?' | '!' | ';' | ':'))
        .filter(|t| !t.is_empty())
        .collect();
    // Each token as the characters it spells, or None if it is an ordinary word.
    let spell = |i: usize| -> Option<String> {
        let t = tokens[i];
        if NATO.contains(&t) {
            return Some(t[..1].to_uppercase());
        }
        if t.chars().count() == 1 && t.chars().all(|c| c.is_ascii_alphabetic()) {
            return Some(t.to_uppercase());
        }
        if matches!(t, "double" | "triple") {
            return Some(String::new()); // handled with the next token
        }
        if let Some(d) = unit(t).filter(|_| !matches!(t, "to" | "too" | "for")) {
            return Some(d.to_string());
        }
        // A mixed written code: "ab12", "x7k".
        let alnum = t.chars().all(|c| c.is_ascii_alphanumeric());
        let has_digit = t.chars().any(|c| c.is_ascii_digit());
        (alnum && (has_digit || t.len() <= 3) && !is_common_word(t)).then(|| t.to_uppercase())
    };
    let mut best = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let mut run = String::new();
        let mut j = i;
        while j < tokens.len() {
            // "b as in bravo": the letter once.
            if j + 3 < tokens.len()
                && tokens[j + 1] == "as"
                && tokens[j + 2] == "in"
                && let Some(s) = spell(j)
            {
                run.push_str(&s);
                j += 4;
                continue;
            }
            match spell(j) {
                Some(s) if s.is_empty() => {
                    let n = if tokens[j] == "double" { 2 } else { 3 };
                    let Some(next) = tokens.get(j + 1).and_then(|_| spell(j + 1)) else {
                        break;
                    };
                    run.push_str(&next.repeat(n));
                    j += 2;
                }
                Some(s) => {
                    run.push_str(&s);
                    j += 1;
                }
                None => break,
            }
        }
        // An opening article or pronoun is not part of the code when the rest is enough.
        if i > 0
            && (run.starts_with('A') || run.starts_with('I'))
            && matches!(tokens[i], "a" | "i")
            && run.len() > min
        {
            run.remove(0);
        }
        if run.len() > best.len() {
            best = run;
        }
        i = j.max(i + 1);
    }
    (min..=max).contains(&best.len()).then_some(best)
}

/// Short words that are words, not codes.
fn is_common_word(t: &str) -> bool {
    const COMMON: &[&str] = &[
        "is", "it", "my", "the", "and", "of", "in", "on", "at", "to", "me", "we", "us", "you",
        "its", "it's", "i'm", "as", "be", "do", "so", "no", "yes", "ok", "hi", "an", "or", "by",
        "up", "are", "was", "can", "has", "had", "his", "her", "our", "for", "not", "but", "all",
        "any", "how", "why", "who", "get", "got", "see", "say", "let", "one", "two", "six", "ten",
        "oh", "uh", "um", "hmm", "yep", "nah", "let's", "that", "code",
    ];
    COMMON.contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_however_they_are_said() {
        let cases = [
            ("four seven two one", "4721"),
            ("forty-seven twenty-one", "4721"),
            ("forty seven twenty one", "4721"),
            ("my order is 4721", "4721"),
            ("47 21", "4721"),
            ("oh four double five", "0455"),
            ("one two three four five six", "123456"),
            ("nine oh one two to three", "901223"),
            ("I want to check order four five", "45"),
            ("it's eighteen thirty", "1830"),
            ("four hundred", "400"),
            ("four hundred twelve", "412"),
            ("four hundred and five", "405"),
            ("四七二一", "4721"),
            ("订单号是幺二三", "123"),
        ];
        for (said, want) in cases {
            assert_eq!(digits(said).as_deref(), Some(want), "{said}");
        }
        assert_eq!(digits("I would like to speak to someone"), None);
    }

    #[test]
    fn yes_and_no() {
        assert_eq!(yes_no("yes please"), Some(true));
        assert_eq!(yes_no("yeah that's right"), Some(true));
        assert_eq!(yes_no("no, that's wrong"), Some(false));
        assert_eq!(yes_no("maybe"), None);
        assert_eq!(yes_no("是的"), Some(true));
        for yes in [
            "that's right",
            "go ahead",
            "uh-huh",
            "yes it is",
            "correct",
            "no problem",
            "that's it",
            "没错",
        ] {
            assert_eq!(yes_no(yes), Some(true), "{yes}");
        }
        for no in [
            "nope",
            "no that's not right",
            "that's wrong",
            "not quite",
            "no, it isn't",
            "不对",
        ] {
            assert_eq!(yes_no(no), Some(false), "{no}");
        }
        assert_eq!(yes_no("不是"), Some(false));
    }

    #[test]
    fn numbers_apart_stay_apart() {
        assert_eq!(digit_runs("order 472198 and 2 items"), vec!["472198", "2"]);
        assert_eq!(
            digit_runs("where is order four seven two one nine eight"),
            vec!["472198"]
        );
        assert_eq!(digit_runs("I want to check it"), Vec::<String>::new());
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            phone("plus four four two oh seven one two three four five six seven").as_deref(),
            Some("+442071234567")
        );
        assert_eq!(phone("it's 020 7123 4567").as_deref(), Some("02071234567"));
        assert_eq!(
            phone("00 86 138 0013 8000").as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(phone("four five six"), None);
    }

    #[test]
    fn amounts_of_money() {
        let cases = [
            ("$25.50", "25.50"),
            ("it was 25.50 dollars", "25.50"),
            ("twenty five dollars and fifty cents", "25.50"),
            ("25 pounds 50", "25.50"),
            ("a hundred and twenty euros", "120.00"),
            (
                "they charged me two thousand five hundred dollars",
                "2500.00",
            ),
            ("fifty cents", "0.50"),
            ("£3", "3.00"),
            ("ninety nine bucks", "99.00"),
        ];
        for (said, want) in cases {
            assert_eq!(money(said).as_deref(), Some(want), "{said}");
        }
        assert_eq!(
            money("order four five six"),
            None,
            "a bare number is no amount"
        );
    }

    #[test]
    fn spelled_codes() {
        let cases = [
            ("A B one two", "AB12"),
            ("my code is alpha bravo 12", "AB12"),
            ("it's AB12", "AB12"),
            ("b as in bravo seven x", "B7X"),
            ("double a three", "AA3"),
            ("the code is k, 7, m, 2", "K7M2"),
        ];
        for (said, want) in cases {
            assert_eq!(code(said, 3, 10).as_deref(), Some(want), "{said}");
        }
        assert_eq!(code("I would like a refund", 3, 10), None);
        assert_eq!(code("where is my order", 3, 10), None);
    }

    #[test]
    fn survey_ratings() {
        for (said, want) in [
            ("four", Some(4)),
            ("5", Some(5)),
            ("I'd give you a four", Some(4)),
            ("four out of five", Some(4)),
            ("3/5", Some(3)),
            ("one star", Some(1)),
            ("五分", Some(5)),
            ("three or four", None),
            ("seven", None),
            ("zero", None),
            ("it was fine", None),
            ("", None),
        ] {
            assert_eq!(rating(said, 5), want, "{said}");
        }
        assert_eq!(rating("ten", 10), Some(10));
    }
}
