//! Who is calling: the caller's number and name from an INVITE, as the dialplan, the records
//! and the dashboard see them.
//!
//! The number comes from `P-Asserted-Identity` when the trunk sends one (RFC 3325 section
//! 9.1: the identity the network vouches for), else from `From` (RFC 3261 section 8.1.1.3,
//! which the caller's device chose). A caller who withholds their identity (`Privacy: id`
//! or `header`, RFC 3323 section 4.2, or an anonymous From, section 4.1.1.3) is `anonymous`:
//! not looked up, not shown. Whatever arrives, the number holds only characters that are
//! safe in a URL path, a log line and an HTML cell.

use super::envelope::Envelope;

/// What a withheld or unusable caller identity becomes.
pub const ANONYMOUS: &str = "anonymous";

/// The longest number or user name kept (E.164 is at most 15 digits; SIP users are longer).
const MAX_NUMBER: usize = 32;
/// The longest display name kept.
const MAX_NAME: usize = 64;

/// The caller as voxnav uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    /// `+15550100`, `1001`, `alice`, or `anonymous`.
    pub number: String,
    /// The display name, when one was sent (and not withheld).
    pub name: Option<String>,
}

impl CallerId {
    pub fn anonymous() -> Self {
        Self {
            number: ANONYMOUS.into(),
            name: None,
        }
    }
}

/// The caller of an INVITE. `trust_asserted`: the INVITE came from a trusted peer (a listed
/// trunk), whose `P-Asserted-Identity` is believed; from anyone else it is ignored (RFC 3325
/// section 5: the header is only meaningful inside a trust domain).
pub fn caller_id(invite: &Envelope, trust_asserted: bool) -> CallerId {
    let withheld = invite.all("Privacy").any(|p| {
        p.split([';', ','])
            .any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "id" | "header"))
    });
    if withheld {
        return CallerId::anonymous();
    }
    // A P-Asserted-Identity may carry a sip and a tel URI (9.1): the first usable one wins.
    let asserted = invite
        .all("P-Asserted-Identity")
        .filter(|_| trust_asserted)
        .flat_map(split_top_level_commas)
        .map(|v| from_name_addr(&v))
        .find(|c| c.number != ANONYMOUS);
    asserted.unwrap_or_else(|| {
        invite
            .get("From")
            .map_or_else(CallerId::anonymous, from_name_addr)
    })
}

/// The number an INVITE dialled: the Request-URI's user part (RFC 3261 section 19.1.1; a
/// trunk puts the called number there), else the To URI's; None when neither has one (a
/// peer that dialled our bare address). Cleaned like a caller's number, so `+1 (555) 0100`
/// and `+15550100` are the same hotline.
pub fn dialled_number(invite: &Envelope) -> Option<String> {
    let request_uri = match &invite.start {
        super::envelope::StartLine::Request { uri, .. } => uri.as_str(),
        _ => "",
    };
    [
        request_uri.to_string(),
        to_uri(invite.get("To").unwrap_or("")),
    ]
    .iter()
    .map(|uri| number_of(uri))
    .find(|n| n != ANONYMOUS)
}

/// A number or user name as the config writes it, cleaned the way `dialled_number` cleans
/// the INVITE's (None: nothing usable is left).
pub fn clean_dialled(number: &str) -> Option<String> {
    Some(clean_number(number.trim())).filter(|n| n != ANONYMOUS)
}

/// The URI of a `name-addr` or `addr-spec` header value.
fn to_uri(value: &str) -> String {
    let value = value.trim();
    match angle_bracket(value) {
        Some(open) => value[open + 1..]
            .split('>')
            .next()
            .unwrap_or("")
            .to_string(),
        None => value.split(';').next().unwrap_or("").to_string(),
    }
}

/// The caller in one `name-addr` or `addr-spec` (RFC 3261 section 20.10).
pub fn from_name_addr(value: &str) -> CallerId {
    let value = value.trim();
    let (name, uri) = match angle_bracket(value) {
        Some(open) => {
            let uri = value[open + 1..].split('>').next().unwrap_or("");
            (display_name(&value[..open]), uri)
        }
        // Without angle brackets, parameters after `;` belong to the header, not the URI.
        None => (None, value.split(';').next().unwrap_or("")),
    };
    let number = number_of(uri);
    if number == ANONYMOUS {
        return CallerId::anonymous();
    }
    CallerId { number, name }
}

/// Where the URI's `<` is: the first one outside the quoted display name.
fn angle_bracket(value: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The user of a sip:, sips: or tel: URI as a caller number.
fn number_of(uri: &str) -> String {
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    let user = if lower.starts_with("tel:") {
        // RFC 3966: the number up to its parameters.
        uri[4..].split(';').next().unwrap_or("")
    } else if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let rest = &uri[uri.find(':').map_or(0, |i| i + 1)..];
        match rest.rsplit_once('@') {
            // User parameters (RFC 3261 19.1.1, e.g. `;isub=`) are not part of the number.
            Some((user, _)) => user.split([';', ':']).next().unwrap_or(""),
            None => "",
        }
    } else {
        ""
    };
    clean_number(&percent_decode(user))
}

/// A number with visual separators removed (RFC 3966 section 5.1.1), or a user name with
/// anything unsafe dropped; `anonymous` when nothing is left.
fn clean_number(user: &str) -> String {
    let dialable: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let is_number = dialable.chars().any(|c| c.is_ascii_digit())
        && dialable
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || c == '*' || c == '#' || (c == '+' && i == 0));
    let kept: String = if is_number {
        dialable
    } else {
        user.chars()
            // Not `.` or `/`: a number ends up in URL paths (`../`).
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '-'))
            .collect()
    };
    let kept: String = kept.chars().take(MAX_NUMBER).collect();
    if kept.is_empty() || kept.eq_ignore_ascii_case(ANONYMOUS) {
        ANONYMOUS.into()
    } else {
        kept
    }
}

/// A display name without quotes, escapes or control characters (RFC 3261 25.1
/// `quoted-string`).
fn display_name(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let mut out = String::new();
    let mut escaped = false;
    for c in raw.chars() {
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        escaped = false;
        if !c.is_control() && !matches!(c, '<' | '>') {
            out.push(c);
        }
    }
    let out: String = out.trim().chars().take(MAX_NAME).collect();
    (!out.is_empty() && !out.eq_ignore_ascii_case(ANONYMOUS)).then_some(out)
}

/// `%2B` and the like in a URI user part (RFC 3261 19.1.2 allows escaping).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Header values separated by commas outside quotes and angle brackets.
fn split_top_level_commas(value: &str) -> Vec<String> {
    let (mut out, mut current) = (Vec::new(), String::new());
    let (mut quoted, mut angle) = (false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(headers: &str) -> Envelope {
        dialling("sip:hotline@192.0.2.9", "<sip:hotline@192.0.2.9>", headers)
    }

    fn dialling(uri: &str, to: &str, headers: &str) -> Envelope {
        let raw = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             To: {to}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
             {headers}Content-Length: 0\r\n\r\n"
        );
        let frame = super::super::framing::frame_datagram(raw.as_bytes()).expect("frames");
        Envelope::scan(raw.as_bytes(), &frame).expect("scans")
    }

    fn number(headers: &str) -> String {
        caller_id(&invite(headers), true).number
    }

    #[test]
    fn asserted_identity_only_from_a_trusted_peer() {
        let headers =
            "From: <sip:1001@pbx>;tag=1\r\nP-Asserted-Identity: <sip:+15550100@trunk>\r\n";
        assert_eq!(caller_id(&invite(headers), true).number, "+15550100");
        // From an untrusted peer the assertion is anyone's claim: From is what it sent.
        assert_eq!(caller_id(&invite(headers), false).number, "1001");
    }

    #[test]
    fn the_dialled_number_from_the_request_uri_then_to() {
        let dialled =
            |uri: &str, to: &str| dialled_number(&dialling(uri, to, "From: <sip:a@b>;tag=1\r\n"));
        assert_eq!(
            dialled("sip:4000@192.0.2.9", "<sip:9999@x>").as_deref(),
            Some("4000")
        );
        assert_eq!(
            dialled("sip:+1-555-0100;phone-context=x@gw;user=phone", "<sip:x@y>").as_deref(),
            Some("+15550100")
        );
        assert_eq!(
            dialled("tel:+15550101", "<sip:x@y>").as_deref(),
            Some("+15550101")
        );
        // A peer that dialled our bare address: the To says what it wanted.
        assert_eq!(
            dialled("sip:192.0.2.9:5060", "\"Sales\" <sip:sales@192.0.2.9>;tag=").as_deref(),
            Some("sales")
        );
        assert_eq!(dialled("sip:192.0.2.9", "sip:192.0.2.9"), None);
        assert_eq!(
            clean_dialled(" +1 (555) 0100 ").as_deref(),
            Some("+15550100")
        );
        assert_eq!(clean_dialled(""), None);
    }

    #[test]
    fn number_from_from_and_asserted_identity() {
        let c = caller_id(
            &invite(
                "From: \"Alice \\\"A\\\" Smith\" <sip:+15550100@192.0.2.1;user=phone>;tag=9\r\n",
            ),
            true,
        );
        assert_eq!(c.number, "+15550100");
        assert_eq!(c.name.as_deref(), Some("Alice \"A\" Smith"));
        // The network's assertion wins over what the device put in From.
        assert_eq!(
            number(
                "From: <sip:1001@pbx>;tag=1\r\nP-Asserted-Identity: <tel:+1-555-0100;phone-context=x>, <sip:+15550100@trunk>\r\n"
            ),
            "+15550100"
        );
        assert_eq!(number("From: sip:alice@example.com;tag=7\r\n"), "alice");
        assert_eq!(
            number("From: <sip:john.smith@example.com>;tag=7\r\n"),
            "johnsmith"
        );
        assert_eq!(
            number("From: <sips:%2B4930123456@gw>;tag=1\r\n"),
            "+4930123456"
        );
        assert_eq!(number("From: <sip:1001;isub=5@pbx>;tag=1\r\n"), "1001");
    }

    #[test]
    fn withheld_and_odd_identities() {
        // RFC 3323: an anonymous From, or Privacy asking for the identity to be withheld.
        assert_eq!(
            number("From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1\r\n"),
            ANONYMOUS
        );
        assert_eq!(
            number("From: <sip:+15550100@gw>;tag=1\r\nPrivacy: id\r\n"),
            ANONYMOUS
        );
        assert_eq!(number("From: <sip:gw.example.com>;tag=1\r\n"), ANONYMOUS);
        assert_eq!(number("To: <sip:x@y>\r\n").as_str(), ANONYMOUS);
        // Characters that could break a URL, a log line or the dashboard are dropped.
        let odd = caller_id(
            &invite("From: \"<script>\" <sip:%3Cb%3E'x%22%2F..%2Fy%20z@gw>;tag=1\r\n"),
            true,
        );
        assert_eq!(odd.number, "bxyz");
        assert_eq!(odd.name.as_deref(), Some("script"));
        let long = number(&format!("From: <sip:{}@gw>;tag=1\r\n", "9".repeat(80)));
        assert_eq!(long.len(), MAX_NUMBER);
        // A `+` in the middle is not a number: kept as a user name's character.
        assert_eq!(number("From: <sip:12+34@gw>;tag=1\r\n"), "12+34");
    }
}
