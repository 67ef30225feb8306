//! Slot values from what callers say (or type): numbers spoken digit by digit ("four seven two
//! one"), in groups ("forty-seven twenty-one"), with "oh", "double"/"triple", as digits
//! ("4721"), or in Mandarin digits ("四七二一"); yes/no; and keypad input.

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

/// The digits a caller said or typed, in order ("my order is forty-seven twenty-one" ->
/// "4721"). Words that are not numbers are skipped; "to"/"for" count as digits only between
/// other digits, so "I want to check order four five" gives "45".
pub fn digits(text: &str) -> Option<String> {
    let ws: Vec<String> = words(&text.replace('-', " "));
    let mut out = String::new();
    let mut i = 0;
    let is_numeric = |w: &str| {
        (unit(w).is_some() && !matches!(w, "to" | "too" | "for" | "o"))
            || teen(w).is_some()
            || tens(w).is_some()
            || w.chars().all(|c| c.is_ascii_digit())
            || w.chars().all(|c| chinese_digit(c).is_some())
            || matches!(w, "double" | "triple" | "hundred" | "thousand")
    };
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

/// Yes (true), no (false), or neither.
pub fn yes_no(text: &str) -> Option<bool> {
    const YES: &[&str] = &[
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "correct",
        "right",
        "ok",
        "okay",
        "affirmative",
        "absolutely",
        "definitely",
        "是",
        "对",
        "好",
        "是的",
        "对的",
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
        "不",
        "不是",
        "不对",
    ];
    let ws = words(text);
    let joined: String = ws.concat();
    if joined.starts_with('不') {
        return Some(false); // 不是, 不对: the negation leads in Mandarin
    }
    let no = ws.iter().any(|w| NO.contains(&w.as_str())) || joined.starts_with('不');
    let yes = ws.iter().any(|w| YES.contains(&w.as_str()))
        || joined.starts_with('是')
        || joined.starts_with('对');
    match (yes, no) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
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
        assert_eq!(yes_no("不是"), Some(false));
    }
}
