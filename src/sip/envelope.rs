//! The envelope of a SIP message: start line, headers and body (RFC 3261 section 7).
//!
//! The scanner is deliberately tolerant: it unfolds continuation lines (7.3.1), expands compact
//! header names (7.3.3), accepts bare LF line ends, and records a malformed start line instead of
//! giving up, so that even a broken request still yields the Via, From, To, Call-ID and CSeq a
//! 400 response must copy (8.2.6.2). Judging the message is `validate`'s job.

use super::framing::Frame;

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP-Version` (RFC 3261 7.1).
    Request {
        method: String,
        uri: String,
        version: String,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase` (RFC 3261 7.2).
    Response {
        version: String,
        code: String,
        reason: String,
    },
    /// A request line that does not have exactly three parts separated by single spaces.
    MalformedRequest(String),
}

/// One header line, unfolded; `name` is the long form for compact names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A scanned message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// Header lines that have no colon (kept to report them).
    pub junk_lines: Vec<String>,
}

/// RFC 3261 7.3.3 compact forms, plus the common extensions' (RFC 3265, 3515, 3892, 4028).
fn long_name(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "e" => "Content-Encoding",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "f" => "From",
        "s" => "Subject",
        "k" => "Supported",
        "t" => "To",
        "v" => "Via",
        "o" => "Event",
        "r" => "Refer-To",
        "b" => "Referred-By",
        "x" => "Session-Expires",
        "u" => "Allow-Events",
        _ => return None,
    })
}

impl Envelope {
    /// Scans the framed message in `buf`. Fails only if there is no start line at all.
    pub fn scan(buf: &[u8], frame: &Frame) -> Option<Envelope> {
        let msg = frame.message(buf);
        let head = String::from_utf8_lossy(&msg[..frame.header_len]);
        let body = msg[frame.header_len..].to_vec();
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().filter(|l| !l.trim().is_empty())?;
        let start = parse_start_line(first);
        let mut headers: Vec<Header> = Vec::new();
        let mut junk_lines = Vec::new();
        for line in lines {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                // RFC 3261 7.3.1: a continuation line is part of the previous header's value.
                match headers.last_mut() {
                    Some(h) => {
                        h.value.push(' ');
                        h.value.push_str(line.trim());
                    }
                    None => junk_lines.push(line.to_string()),
                }
                continue;
            }
            match line.split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => {
                    let name = name.trim();
                    headers.push(Header {
                        name: long_name(name).map_or_else(|| name.to_string(), str::to_string),
                        value: value.trim().to_string(),
                    });
                }
                _ => junk_lines.push(line.to_string()),
            }
        }
        for h in &mut headers {
            h.value = h.value.trim().to_string();
        }
        Some(Envelope {
            start,
            headers,
            body,
            junk_lines,
        })
    }

    /// All values of a header (case-insensitive name, compact forms already expanded).
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// How many lines carry this header.
    pub fn count(&self, name: &str) -> usize {
        self.all(name).count()
    }

    pub fn is_response(&self) -> bool {
        matches!(self.start, StartLine::Response { .. })
    }

    /// The request method, if this is a request with a readable method.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            _ => None,
        }
    }
}

fn parse_start_line(line: &str) -> StartLine {
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let mut parts = line.splitn(3, ' ');
        return StartLine::Response {
            version: parts.next().unwrap_or_default().to_string(),
            code: parts.next().unwrap_or_default().to_string(),
            reason: parts.next().unwrap_or_default().to_string(),
        };
    }
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        [method, uri, version] if !method.is_empty() && !uri.is_empty() && !version.is_empty() => {
            StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
                version: version.to_string(),
            }
        }
        _ => StartLine::MalformedRequest(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framing::frame_datagram;

    fn scan(msg: &str) -> Envelope {
        let f = frame_datagram(msg.as_bytes()).unwrap();
        Envelope::scan(msg.as_bytes(), &f).unwrap()
    }

    #[test]
    fn unfolds_and_expands_compact_names() {
        let e = scan(
            "INVITE sip:a@b SIP/2.0\r\nTO :\r\n sip:x@y ;tag = 1\r\nv: SIP/2.0/UDP h\r\nl: 0\r\nX-Long: one\r\n\ttwo\r\n\r\n",
        );
        assert_eq!(e.get("to"), Some("sip:x@y ;tag = 1"));
        assert_eq!(e.get("Via"), Some("SIP/2.0/UDP h"));
        assert_eq!(e.get("content-length"), Some("0"));
        assert_eq!(e.get("x-long"), Some("one two"));
        assert_eq!(e.method(), Some("INVITE"));
    }

    #[test]
    fn start_lines() {
        assert!(
            matches!(scan("SIP/2.0 200 OK Fine\r\n\r\n").start, StartLine::Response { ref reason, .. } if reason == "OK Fine")
        );
        assert!(
            matches!(scan("SIP/2.0 100\r\n\r\n").start, StartLine::Response { ref code, .. } if code == "100")
        );
        assert!(matches!(
            scan("INVITE  sip:a@b SIP/2.0\r\n\r\n").start,
            StartLine::MalformedRequest(_)
        ));
        assert!(matches!(
            scan("INVITE sip:a@b; lr SIP/2.0\r\n\r\n").start,
            StartLine::MalformedRequest(_)
        ));
        let e = scan("OPTIONS sip:a@b SIP/2.0\nVia: x\n\n");
        assert_eq!(e.get("via"), Some("x"));
    }
}
