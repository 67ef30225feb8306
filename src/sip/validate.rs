//! Judging a scanned message before any transaction or dialog sees it: RFC 3261 section 8.2 (UAS
//! behaviour) and the verdicts RFC 4475 gives for its torture messages.
//!
//! Order follows 8.2: syntax and required headers (400, 505), method (501 with Allow, 8.2.1),
//! Request-URI scheme (416, 8.2.2.1), Require (420 with Unsupported, 8.2.2.3), content (415 with
//! Accept, 8.2.3) and Accept (406). Responses that make no sense are dropped, never answered.

use super::envelope::{Envelope, StartLine};

/// Methods voxnav implements as a UAS.
pub const ALLOWED_METHODS: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "NOTIFY",
];
/// Methods that are standard SIP but that voxnav does not implement; valid syntax, answered by
/// the endpoint (a REGISTER is well formed but we are not a registrar).
const OTHER_KNOWN_METHODS: &[&str] = &[
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "PUBLISH",
    "REFER",
    "MESSAGE",
];
/// Option tags voxnav supports in Require: session timers (RFC 4028, `session_timer`).
pub const SUPPORTED_OPTIONS: &[&str] = &["timer"];
/// Body types voxnav accepts.
pub const ACCEPTED_TYPES: &[&str] = &[
    "application/sdp",
    "application/dtmf-relay",
    // The NOTIFYs of a REFER's progress (RFC 3515 section 2.4.5).
    "message/sipfrag",
    "multipart/mixed",
];
/// Headers that may appear once only (RFC 3261 7.3.1 and section 20).
const SINGLE_HEADERS: &[&str] = &[
    "To",
    "From",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A well-formed request for the transaction layer.
    Request,
    /// A well-formed response for the transaction layer.
    Response,
    /// Answer statelessly with this status (RFC 3261 8.2) and do nothing else.
    Reject(Rejection),
    /// Discard silently (malformed responses; requests too broken to answer).
    Drop(String),
}

/// A stateless rejection: status, reason phrase, extra headers, and why (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(String, String)>,
    pub why: String,
}

fn reject(status: u16, reason: &'static str, why: impl Into<String>) -> Verdict {
    Verdict::Reject(Rejection {
        status,
        reason,
        headers: Vec::new(),
        why: why.into(),
    })
}

fn bad(why: impl Into<String>) -> Verdict {
    reject(400, "Bad Request", why)
}

/// RFC 3261 25.1 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// `CSeq: 1*DIGIT LWS Method`, number below 2**31 (RFC 3261 8.1.1.5).
fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut parts = value.split_whitespace();
    let (num, method) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return None;
    }
    num.parse::<u32>()
        .ok()
        .filter(|n| *n < 1 << 31)
        .map(|n| (n, method))
}

/// A Via value list: `SIP / 2.0 / transport sent-by *(; param)`, comma separated (RFC 3261 20.42).
fn valid_via(value: &str) -> bool {
    split_outside_quotes(value, ',')
        .iter()
        .all(|via| valid_via_entry(via))
}

/// One Via entry: `SIP / 2.0 / transport sent-by *(; param)`.
pub(crate) fn valid_via_entry(via: &str) -> bool {
    let mut rest = via.trim();
    for expected in ["SIP", "/", "2.0", "/"] {
        rest = rest.trim_start();
        match rest.get(..expected.len()) {
            Some(head) if head.eq_ignore_ascii_case(expected) => rest = &rest[expected.len()..],
            _ => return false,
        }
    }
    let rest = rest.trim_start();
    let transport_end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let (transport, rest) = rest.split_at(transport_end);
    let sent_by = rest.split(';').next().unwrap_or_default().trim();
    is_token(transport) && !sent_by.is_empty() && !sent_by.contains(char::is_whitespace)
}

/// Splits at `sep` outside double quotes and angle brackets.
pub(crate) fn split_outside_quotes(value: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut angle, mut escaped) =
        (Vec::new(), 0, false, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            c if c == sep && !quoted && !angle => {
                parts.push(&value[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// The URI scheme, if the text starts with a syntactically valid one (RFC 3986 3.1).
fn scheme(uri: &str) -> Option<&str> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(scheme)
}

/// A URI with no characters that can never appear in one.
fn plausible_uri(uri: &str) -> bool {
    scheme(uri).is_some() && !uri.contains(|c: char| c.is_whitespace() || "<>\"".contains(c))
}

/// `name-addr / addr-spec` with parameters, as in From, To and Contact (RFC 3261 20.10, 25.1).
fn valid_name_addr(value: &str) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    // A quoted display name must close; an unquoted one must be tokens separated by spaces.
    let (display_ok, rest) = if let Some(quoted) = value.strip_prefix('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
        }
        match close {
            Some(i) => (true, quoted[i + 1..].trim_start()),
            None => return false,
        }
    } else if let Some(lt) = value.find('<') {
        let display = value[..lt].trim();
        (display.split_whitespace().all(is_token), &value[lt..])
    } else {
        (true, value)
    };
    if !display_ok {
        return false;
    }
    if let Some(inner) = rest.strip_prefix('<') {
        // name-addr: no whitespace inside the brackets (RFC 4475 3.1.2.14).
        let Some(end) = inner.find('>') else {
            return false;
        };
        let uri = &inner[..end];
        plausible_uri(uri) && valid_params(&inner[end + 1..])
    } else {
        // addr-spec: the URI may not contain ',', '?' or ';' (those would belong to the header).
        let uri = rest.split(';').next().unwrap_or_default().trim();
        plausible_uri(uri) && !uri.contains('?') && valid_params(&rest[uri.len()..])
    }
}

/// `*( SEMI generic-param )` with LWS allowed around `;` and `=`.
fn valid_params(params: &str) -> bool {
    let params = params.trim();
    if params.is_empty() {
        return true;
    }
    let Some(list) = params.strip_prefix(';') else {
        return false;
    };
    list.split(';').all(|p| {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        let value = value.trim();
        is_token(name.trim())
            && (value.is_empty() && !p.contains('=')
                || is_token(value)
                || value.starts_with('"') && value.ends_with('"') && value.len() >= 2
                || value.starts_with('[') && value.ends_with(']'))
    })
}

/// Whether `accept` (an Accept header value) allows `media`.
fn accepts(accept: &str, media: &str) -> bool {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|range| {
        let range = range
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        range == media || range == "*/*" || range == format!("{kind}/*")
    })
}

/// Judges a scanned message.
pub fn validate(env: &Envelope) -> Verdict {
    match &env.start {
        StartLine::Response { version, code, .. } => validate_response(env, version, code),
        StartLine::MalformedRequest(line) => bad(format!("malformed request line {line:?}")),
        StartLine::Request {
            method,
            uri,
            version,
        } => validate_request(env, method, uri, version),
    }
}

fn validate_response(env: &Envelope, version: &str, code: &str) -> Verdict {
    let code_ok = code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (100..700).contains(&c));
    if !version.eq_ignore_ascii_case("SIP/2.0") || !code_ok {
        return Verdict::Drop(format!("response with version {version:?} status {code:?}"));
    }
    let via_ok = env.count("Via") > 0 && env.all("Via").all(valid_via);
    let cseq_ok = env.count("CSeq") == 1 && env.get("CSeq").and_then(parse_cseq).is_some();
    if !via_ok || !cseq_ok || env.count("Call-ID") != 1 {
        return Verdict::Drop("response without a usable Via, CSeq or Call-ID".into());
    }
    // RFC 3261 8.1.3.3: a response reaching a UA carries exactly one Via; more means it was
    // misrouted (RFC 4475 3.3.10 uses a broadcast second Via).
    let vias: usize = env
        .all("Via")
        .map(|v| split_outside_quotes(v, ',').len())
        .sum();
    if vias != 1 {
        return Verdict::Drop(format!("response with {vias} Via entries"));
    }
    Verdict::Response
}

fn validate_request(env: &Envelope, method: &str, uri: &str, version: &str) -> Verdict {
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return if version.len() > 4
            && version
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        {
            reject(505, "Version Not Supported", format!("version {version}"))
        } else {
            bad(format!("bad version {version:?}"))
        };
    }
    if !is_token(method) {
        return bad(format!("method {method:?} is not a token"));
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if env.count(name) == 0 {
            return bad(format!("missing {name} header"));
        }
    }
    for name in SINGLE_HEADERS {
        if env.count(name) > 1 {
            return bad(format!("{name} appears {} times", env.count(name)));
        }
    }
    if let Some(line) = env.junk_lines.first() {
        return bad(format!("header line without a colon: {line:?}"));
    }
    let Some((_, cseq_method)) = env.get("CSeq").and_then(parse_cseq) else {
        return bad(format!(
            "bad CSeq {:?}",
            env.get("CSeq").unwrap_or_default()
        ));
    };
    if let Some(mf) = env.get("Max-Forwards")
        && !(mf.bytes().all(|b| b.is_ascii_digit()) && mf.parse::<u8>().is_ok())
    {
        return bad(format!("bad Max-Forwards {mf:?}"));
    }
    if !env.all("Via").all(valid_via) {
        return bad("malformed Via");
    }
    for name in ["From", "To"] {
        let value = env.get(name).unwrap_or_default();
        if !valid_name_addr(value) {
            return bad(format!("malformed {name}: {value:?}"));
        }
    }
    for contact in env.all("Contact") {
        if !split_outside_quotes(contact, ',')
            .iter()
            .all(|c| valid_name_addr(c))
        {
            return bad(format!("malformed Contact: {contact:?}"));
        }
    }
    let known = ALLOWED_METHODS.contains(&method) || OTHER_KNOWN_METHODS.contains(&method);
    if !known {
        return Verdict::Reject(Rejection {
            status: 501,
            reason: "Not Implemented",
            headers: vec![("Allow".into(), ALLOWED_METHODS.join(", "))],
            why: format!("method {method} not implemented"),
        });
    }
    if cseq_method != method {
        return bad(format!("CSeq method {cseq_method} does not match {method}"));
    }
    // Request-URI (RFC 3261 8.2.2.1): angle brackets, spaces and escaped headers are invalid;
    // a well-formed URI of a scheme we do not serve is 416.
    if uri.starts_with('<') || !plausible_uri(uri) {
        return bad(format!("malformed Request-URI {uri:?}"));
    }
    let scheme = scheme(uri).unwrap_or_default().to_ascii_lowercase();
    if !["sip", "sips", "tel"].contains(&scheme.as_str()) {
        return reject(416, "Unsupported URI Scheme", format!("scheme {scheme}"));
    }
    if uri.contains('?') {
        return bad("Request-URI carries escaped headers");
    }
    if method == "ACK" || method == "CANCEL" {
        return Verdict::Request;
    }
    let unsupported: Vec<String> = env
        .all("Require")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && !SUPPORTED_OPTIONS.contains(&t.as_str()))
        .collect();
    if !unsupported.is_empty() {
        return Verdict::Reject(Rejection {
            status: 420,
            reason: "Bad Extension",
            headers: vec![("Unsupported".into(), unsupported.join(", "))],
            why: "unsupported Require option".into(),
        });
    }
    if !env.body.is_empty() {
        let ctype = env
            .get("Content-Type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !ACCEPTED_TYPES.contains(&ctype.as_str()) {
            return Verdict::Reject(Rejection {
                status: 415,
                reason: "Unsupported Media Type",
                headers: vec![("Accept".into(), ACCEPTED_TYPES.join(", "))],
                why: format!("body of type {ctype:?}"),
            });
        }
    }
    if (method == "INVITE" || method == "OPTIONS")
        && let Some(accept) = env.get("Accept")
        && !accepts(accept, "application/sdp")
    {
        return reject(
            406,
            "Not Acceptable",
            format!("Accept {accept:?} excludes SDP"),
        );
    }
    Verdict::Request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_helpers() {
        assert_eq!(parse_cseq("0009 INVITE"), Some((9, "INVITE")));
        assert_eq!(parse_cseq("36893488147419103232 REGISTER"), None);
        assert!(valid_via("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw"));
        assert!(valid_via(
            "SIP/2.0/TCP a.example.com ; branch = z9hG4bK1 , SIP/2.0/UDP b;branch=x"
        ));
        assert!(!valid_via("SIP/3.0/UDP a"));
        assert!(valid_name_addr(
            r#""J Rosenberg \\\"" <sip:jdrosen@example.com> ; tag = 98asjd8"#
        ));
        assert!(valid_name_addr("sip:caller@example.net;tag=93334"));
        assert!(!valid_name_addr(r#""Mr. J. User <sip:j.user@example.com>"#));
        assert!(!valid_name_addr(
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"
        ));
        assert!(!valid_name_addr(
            r#""Watson, Thomas" < sip:t.watson@example.org >"#
        ));
        assert!(!valid_name_addr(
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        ));
        assert!(accepts("text/plain, application/*", "application/sdp"));
        assert!(!accepts("text/nonstandard", "application/sdp"));
    }
}
