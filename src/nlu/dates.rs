//! Dates and times of day as callers say them ("next Tuesday", "the third of May", "May 3rd",
//! "tomorrow", "half past four", "three thirty pm", "noon"), resolved against the call's
//! date. The calendar is proleptic Gregorian on day numbers (days since 1970-01-01), after
//! Howard Hinnant's `days_from_civil` / `civil_from_days`; no clock is read here: the caller
//! of these functions says what "today" is.

use super::lexical::words;

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// `YYYY-MM-DD`, or None if it is no real day (31 April, 29 February 2027).
    pub fn parse(s: &str) -> Option<Date> {
        let mut it = s.trim().splitn(3, '-');
        let year = it.next()?.parse().ok()?;
        let month = it.next()?.parse().ok()?;
        let day = it.next()?.parse().ok()?;
        Date::new(year, month, day)
    }

    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Date { year, month, day })
    }

    /// The day from a count of days since 1970-01-01 (negative before).
    pub fn from_days(z: i64) -> Date {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// 0 = Monday .. 6 = Sunday (1970-01-01 was a Thursday).
    pub fn weekday(self) -> u32 {
        (self.days() + 3).rem_euclid(7) as u32
    }

    pub fn plus_days(self, n: i64) -> Date {
        Date::from_days(self.days() + n)
    }

    /// Today in UTC from the Unix time (the I/O shell reads the clock, not the engine).
    pub fn from_unix_secs(secs: u64) -> Date {
        Date::from_days((secs / 86_400) as i64)
    }
}

/// `vars` with `today` set from the system clock (UTC) unless it is set already: what a host
/// (the call driver, the simulator, the test runner) gives a call so "tomorrow" means
/// something. The engine itself reads no clock.
pub fn with_today(
    mut vars: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    if !vars.contains_key("today") {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        vars.insert("today".into(), Date::from_unix_secs(secs).to_string());
    }
    vars
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Month names as the readers match them (lower case).
pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
/// Weekday names, Monday first (lower case).
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn month(w: &str) -> Option<u32> {
    let w = w.trim_end_matches('.');
    let abbreviated = |m: &str| w.len() >= 3 && m.starts_with(w) && (w.len() <= 4 || m == w);
    MONTHS
        .iter()
        .position(|m| *m == w || abbreviated(m))
        .map(|i| i as u32 + 1)
}

fn weekday(w: &str) -> Option<u32> {
    // Full names and the spoken short forms; not "sat", "sun", "wed": words of their own.
    let w = match w {
        "mon" => "monday",
        "tue" | "tues" => "tuesday",
        "weds" => "wednesday",
        "thu" | "thur" | "thurs" => "thursday",
        "fri" => "friday",
        w => w,
    };
    WEEKDAYS.iter().position(|d| *d == w).map(|i| i as u32)
}

/// A day of the month said as an ordinal or a number: "third", "3rd", "twenty-first", "21".
fn day_of_month(ws: &[String], i: usize) -> Option<(u32, usize)> {
    const ORD: [&str; 31] = [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
        "twenty first",
        "twenty second",
        "twenty third",
        "twenty fourth",
        "twenty fifth",
        "twenty sixth",
        "twenty seventh",
        "twenty eighth",
        "twenty ninth",
        "thirtieth",
        "thirty first",
    ];
    let w = ws.get(i)?.as_str();
    let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        let rest = &w[digits.len()..];
        if matches!(rest, "" | "st" | "nd" | "rd" | "th") {
            let d: u32 = digits.parse().ok()?;
            return (1..=31).contains(&d).then_some((d, 1));
        }
        return None;
    }
    let two = ws.get(i + 1).map(|n| format!("{w} {n}"));
    if let Some(two) = two
        && let Some(p) = ORD.iter().position(|o| *o == two)
    {
        return Some((p as u32 + 1, 2));
    }
    if let Some(p) = ORD.iter().position(|o| *o == w) {
        return Some((p as u32 + 1, 1));
    }
    // "the twenty one of May" / "May twenty one": cardinals too.
    let n = super::slots::digits(&ws[i..(i + 2).min(ws.len())].join(" "))?;
    let used = if ws.len() > i + 1 && super::slots::digits(&ws[i + 1]).is_some() {
        2
    } else {
        1
    };
    let d: u32 = n.parse().ok()?;
    (1..=31).contains(&d).then_some((d, used))
}

/// Which way a date without a year (or a bare weekday) points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tense {
    /// Decided by what the caller said: "last", "ago", or a verb in the past tense ("I
    /// bought it on the 5th") point back; otherwise forward.
    #[default]
    Either,
    /// A date that has happened (a purchase date).
    Past,
    /// A date to come (a delivery or appointment date).
    Future,
}

/// Verbs in the past tense that callers use about orders: a date with them has happened.
const PAST_CUES: &[&str] = &[
    "last",
    "ago",
    "past",
    "bought",
    "ordered",
    "received",
    "arrived",
    "came",
    "paid",
    "placed",
    "was",
    "were",
    "did",
    "got",
    "sent",
    "delivered",
    "returned",
    "charged",
    "purchased",
    "shipped",
    "happened",
    "called",
];

/// The date a caller means, relative to `today`: "today", "tomorrow", "the day after
/// tomorrow", "yesterday", "on Friday" (the next one), "next Tuesday", "last Monday", "the
/// third of May", "May 3rd", "3 May 2027", "in three days", or an ISO `2027-05-03`. A day
/// and month without a year is the next such day from today (a past one if the caller said
/// "last"). None when no date is in the text.
pub fn date(text: &str, today: Date, tense: Tense) -> Option<Date> {
    let lowered = text.to_lowercase();
    for token in lowered.split_whitespace() {
        if let Some(d) = Date::parse(token.trim_matches(|c: char| !c.is_ascii_digit())) {
            return Some(d);
        }
    }
    let ws = words(&lowered.replace('-', " "));
    let has = |w: &str| ws.iter().any(|x| x == w);
    let joined = ws.join(" ");
    if joined.contains("day after tomorrow") {
        return Some(today.plus_days(2));
    }
    if joined.contains("day before yesterday") {
        return Some(today.plus_days(-2));
    }
    let past = match tense {
        Tense::Past => true,
        Tense::Future => false,
        Tense::Either => PAST_CUES.iter().any(|c| has(c)),
    };
    // An explicit month: "3 May", "the third of May", "May 3rd", "May the third".
    for (i, w) in ws.iter().enumerate() {
        let Some(m) = month(w) else { continue };
        if w == "may" && !may_is_the_month(&ws, i) {
            continue;
        }
        let after = ws.get(i + 1).map(|w| w == "the").unwrap_or(false) as usize;
        let day = day_of_month(&ws, i + 1 + after).map(|(d, n)| (d, i + 1 + after + n));
        let before = (1..=3)
            .rev()
            .filter_map(|back| {
                let start = i.checked_sub(back)?;
                let (d, n) = day_of_month(&ws, start)?;
                let between = &ws[start + n..i];
                (between.is_empty() || between == ["of"]).then_some((d, i + 1))
            })
            .next();
        let Some((d, end)) = day.or(before) else {
            continue;
        };
        let year = ws
            .get(end)
            .and_then(|y| y.parse::<i32>().ok())
            .filter(|y| (1900..=2200).contains(y));
        return match year {
            Some(y) => Date::new(y, m, d),
            None => nearest(today, m, d, past),
        };
    }
    if has("today") || has("tonight") {
        return Some(today);
    }
    if has("tomorrow") {
        return Some(today.plus_days(1));
    }
    if has("yesterday") {
        return Some(today.plus_days(-1));
    }
    // "in three days", "two weeks ago", "in a week".
    for (i, w) in ws.iter().enumerate() {
        let unit = match w.trim_end_matches('s') {
            "day" => 1,
            "week" => 7,
            _ => continue,
        };
        let Some(prev) = i.checked_sub(1).map(|p| ws[p].as_str()) else {
            continue;
        };
        let n: i64 = match prev {
            "a" | "one" => 1,
            _ => match super::slots::digits(prev).and_then(|d| d.parse().ok()) {
                Some(n) => n,
                None => continue,
            },
        };
        if ws.get(i + 1).is_some_and(|w| w == "ago") {
            return Some(today.plus_days(-n * unit));
        }
        if i >= 2 && ws[i - 2] == "in" || ws.get(i + 1).is_some_and(|w| w == "from") {
            return Some(today.plus_days(n * unit));
        }
    }
    // A weekday: the next one ("on Friday", "next Friday"), or the last one.
    for (i, w) in ws.iter().enumerate() {
        let Some(wd) = weekday(w) else { continue };
        let prev = i.checked_sub(1).map(|p| ws[p].as_str());
        let delta = i64::from(wd) - i64::from(today.weekday());
        let back = prev == Some("last") || (past && !matches!(prev, Some("next" | "this")));
        return Some(if back {
            today.plus_days(if delta < 0 { delta } else { delta - 7 })
        } else if prev == Some("this") {
            today.plus_days(delta.rem_euclid(7))
        } else {
            // "on Friday" said on a Friday means a week on; so does "next Friday".
            today.plus_days(if delta <= 0 { delta + 7 } else { delta })
        });
    }
    None
}

/// "May" is the month next to a day number or after "of"/"in", not the verb ("may I").
fn may_is_the_month(ws: &[String], i: usize) -> bool {
    let next_is_day = day_of_month(ws, i + 1).is_some()
        || (ws.get(i + 1).is_some_and(|w| w == "the") && day_of_month(ws, i + 2).is_some());
    let prev = i.checked_sub(1).map(|p| ws[p].as_str());
    let after_day = i.checked_sub(1).is_some_and(|p| {
        day_of_month(ws, p).is_some()
            || (ws[p] == "of" && p >= 1 && day_of_month(ws, p - 1).is_some())
            || (ws[p] == "of" && p >= 2 && day_of_month(ws, p - 2).is_some())
    });
    next_is_day || after_day || matches!(prev, Some("in" | "of" | "since" | "until"))
}

/// The next `month`/`day` on or after today (on or before, for the past).
fn nearest(today: Date, month: u32, day: u32, past: bool) -> Option<Date> {
    let this = Date::new(today.year, month, day);
    let other = Date::new(today.year + if past { -1 } else { 1 }, month, day);
    match this {
        Some(d) if (!past && d >= today) || (past && d <= today) => Some(d),
        _ => other,
    }
}

/// A time of day, 24-hour `(hour, minute)`: "three thirty pm", "half past four", "quarter to
/// five", "ten o'clock", "noon", "midnight", "15:30", "7 am", "nine fifteen in the evening".
/// Without am/pm or a part of the day, an hour from 1 to 6 is taken as afternoon (callers
/// book and ask about business hours), 7 to 12 as said.
pub fn time(text: &str) -> Option<(u32, u32)> {
    let lowered = text
        .to_lowercase()
        .replace("a.m.", "am")
        .replace("p.m.", "pm");
    let ws = words(&lowered.replace([':', '-'], " "));
    let has = |w: &str| ws.iter().any(|x| x == w);
    if has("noon") || has("midday") {
        return Some((12, 0));
    }
    if has("midnight") {
        return Some((0, 0));
    }
    let pm = has("pm") || has("afternoon") || has("evening") || has("tonight");
    let am = has("am") || has("morning");
    let number = |w: &str| -> Option<u32> {
        super::slots::digits(w)
            .filter(|d| d.len() <= 2)
            .and_then(|d| d.parse().ok())
    };
    let hour_word = |w: &str| number(w).filter(|h| (0..=24).contains(h));
    let mut found: Option<(u32, u32, bool)> = None; // hour, minute, 24-hour clock said
    for i in 0..ws.len() {
        let w = ws[i].as_str();
        // "half past four", "quarter past four", "twenty to five", "ten past six".
        if matches!(w, "past" | "after" | "to" | "before")
            && i >= 1
            && let Some(h) = ws.get(i + 1).and_then(|n| hour_word(n))
        {
            let before = ws[i - 1].as_str();
            let minutes = match before {
                "half" => Some(30),
                "quarter" => Some(15),
                _ => number(before).filter(|m| *m < 60).or_else(|| {
                    (i >= 2 && before == "minutes")
                        .then(|| number(&ws[i - 2]))
                        .flatten()
                }),
            };
            if let Some(m) = minutes {
                found = Some(if matches!(w, "to" | "before") {
                    ((h + 23) % 24, 60 - m, false)
                } else {
                    (h, m, false)
                });
                break;
            }
        }
        // "15 30", "3 30", "three thirty", "ten o'clock", "seven am".
        let Some(h) = hour_word(w) else { continue };
        let next = ws.get(i + 1).map(String::as_str);
        let context = i >= 1 && matches!(ws[i - 1].as_str(), "at" | "by" | "around" | "about")
            || matches!(next, Some("o'clock" | "oclock" | "am" | "pm" | "o"))
            || am
            || pm;
        let minute = next.and_then(|n| {
            if matches!(n, "o'clock" | "oclock") {
                return Some(0);
            }
            let m = super::slots::digits(n)?;
            // "three thirty", "three oh five": the second group is the minutes.
            let m: u32 = if n == "oh" || n == "o" {
                ws.get(i + 2).and_then(|x| number(x)).filter(|m| *m < 10)?
            } else {
                m.parse().ok()?
            };
            (m < 60 && (m >= 10 || n == "oh" || n == "o" || m == 0)).then_some(m)
        });
        let two_digit_clock = w.len() == 2 && w.starts_with(['0', '1', '2']) && minute.is_some();
        if context || minute.is_some() {
            found = Some((h, minute.unwrap_or(0), two_digit_clock || h > 12));
            if context || minute.is_some() {
                break;
            }
        }
    }
    let (mut h, m, clock24) = found?;
    if h > 24 || m > 59 {
        return None;
    }
    if !clock24 {
        if pm && h < 12 {
            h += 12;
        } else if am && h == 12 {
            h = 0;
        } else if !am && !pm && (1..=6).contains(&h) {
            h += 12;
        }
    }
    Some((h % 24, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wednesday 2 December 2026.
    fn today() -> Date {
        Date::new(2026, 12, 2).unwrap()
    }

    #[test]
    fn the_calendar_round_trips_and_knows_its_weekdays() {
        for n in [-800_000i64, -1, 0, 1, 59, 10_957, 20_789, 400_000] {
            assert_eq!(Date::from_days(n).days(), n);
        }
        assert_eq!(Date::from_days(0).to_string(), "1970-01-01");
        assert_eq!(today().weekday(), 2, "a Wednesday");
        assert_eq!(
            Date::new(2028, 2, 29).unwrap().plus_days(1).to_string(),
            "2028-03-01"
        );
        assert!(Date::new(2027, 2, 29).is_none());
        assert!(Date::parse("2026-04-31").is_none());
        assert_eq!(
            Date::from_unix_secs(1_796_169_600).to_string(),
            "2026-12-02"
        );
    }

    #[test]
    fn dates_however_they_are_said() {
        let cases = [
            ("today", "2026-12-02"),
            ("tomorrow please", "2026-12-03"),
            ("the day after tomorrow", "2026-12-04"),
            ("it came yesterday", "2026-12-01"),
            ("on friday", "2026-12-04"),
            ("next tuesday", "2026-12-08"),
            ("on Wednesday", "2026-12-09"),
            ("last monday", "2026-11-30"),
            ("I ordered it on Monday", "2026-11-30"),
            ("deliver it on Monday", "2026-12-07"),
            ("the third of may", "2027-05-03"),
            ("May 3rd", "2027-05-03"),
            ("may the third", "2027-05-03"),
            ("3 May 2026", "2026-05-03"),
            ("on the twenty-first of December", "2026-12-21"),
            ("December twenty first", "2026-12-21"),
            ("I bought it on the 5th of November", "2026-11-05"),
            ("last November the 28th", "2026-11-28"),
            ("in three days", "2026-12-05"),
            ("two weeks ago", "2026-11-18"),
            ("2027-01-15", "2027-01-15"),
            ("Jan 15", "2027-01-15"),
        ];
        for (said, want) in cases {
            assert_eq!(
                date(said, today(), Tense::Either)
                    .map(|d| d.to_string())
                    .as_deref(),
                Some(want),
                "{said}"
            );
        }
        for none in [
            "may I speak to someone",
            "where is my order",
            "the thirty-first of April",
        ] {
            assert_eq!(date(none, today(), Tense::Either), None, "{none}");
        }
        // The slot says which way: a purchase date is past, a delivery date to come.
        assert_eq!(
            date("the fifth of November", today(), Tense::Past).map(|d| d.to_string()),
            Some("2026-11-05".into())
        );
        assert_eq!(
            date("on Monday", today(), Tense::Past).map(|d| d.to_string()),
            Some("2026-11-30".into())
        );
        assert_eq!(
            date("the first of December", today(), Tense::Future).map(|d| d.to_string()),
            Some("2027-12-01".into())
        );
    }

    #[test]
    fn times_however_they_are_said() {
        let cases = [
            ("at three thirty pm", (15, 30)),
            ("half past four", (16, 30)),
            ("quarter to five", (16, 45)),
            ("ten o'clock", (10, 0)),
            ("noon", (12, 0)),
            ("15:30", (15, 30)),
            ("7 am", (7, 0)),
            ("nine fifteen in the evening", (21, 15)),
            ("around eleven in the morning", (11, 0)),
            ("twelve am", (0, 0)),
            ("three oh five", (15, 5)),
            ("twenty past nine", (9, 20)),
        ];
        for (said, want) in cases {
            assert_eq!(time(said), Some(want), "{said}");
        }
        assert_eq!(time("where is my order"), None);
        assert_eq!(time("I want a refund"), None);
    }
}
