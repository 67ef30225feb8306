//! Where one SIP message ends: RFC 3261 section 18.3 (framing) and 7.5 (keep-alive CRLFs).
//!
//! Framing is separate from parsing, and "incomplete" is a result: on a stream (TCP) the bytes of
//! one message may arrive in pieces, and the length comes from Content-Length. On a datagram (UDP)
//! the datagram is the message: a missing Content-Length means "the rest", and octets beyond
//! Content-Length are ignored (RFC 3261 18.3, RFC 4475 3.1.1.8).

/// Longest header section accepted, so a peer cannot make us buffer forever.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest body accepted (SDP and dtmf-relay bodies are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why bytes cannot be framed as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// No blank line ends the headers within the limit.
    #[error("header section longer than {MAX_HEADER_BYTES} bytes or never ends")]
    HeadersTooLong,
    /// Content-Length is not a non-negative number, or appears twice with different values.
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    /// Content-Length says more than the datagram holds (RFC 4475 3.1.2.2).
    #[error("Content-Length {declared} is larger than the {available} body bytes received")]
    BodyTruncated { declared: usize, available: usize },
    /// The body is over the limit.
    #[error("body of {0} bytes is over the limit")]
    BodyTooLarge(usize),
}

/// A framed message inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes before the message (keep-alive CRLFs), skipped.
    pub skip: usize,
    /// Length of the header section, including the blank line.
    pub header_len: usize,
    /// Length of the body.
    pub body_len: usize,
}

impl Frame {
    /// Total bytes the message uses in the buffer, leading CRLFs included.
    pub fn consumed(&self) -> usize {
        self.skip + self.header_len + self.body_len
    }

    /// The message bytes (headers and body).
    pub fn message<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.skip..self.consumed()]
    }
}

/// What a stream buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFrame {
    /// Nothing but keep-alive CRLFs (this many), or not yet a whole message: read more.
    Incomplete { keepalive: usize },
    /// One whole message.
    Complete(Frame),
}

/// Finds the end of the header section (CRLFCRLF, or LFLF from lenient peers).
fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// The Content-Length the header section declares (`Content-Length` or compact `l`), if any.
fn content_length(headers: &[u8]) -> Result<Option<usize>, FramingError> {
    let text = String::from_utf8_lossy(headers);
    let mut found: Option<usize> = None;
    for line in text.split('\n').skip(1) {
        // Folded continuation lines never start a Content-Length header.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let value = value.trim();
        let n: usize = value
            .parse()
            .ok()
            .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| FramingError::BadContentLength(format!("{value:?}")))?;
        if found.is_some_and(|f| f != n) {
            return Err(FramingError::BadContentLength(
                "two different values".into(),
            ));
        }
        found = Some(n);
    }
    Ok(found)
}

fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Frames the one message of a UDP datagram.
pub fn frame_datagram(buf: &[u8]) -> Result<Frame, FramingError> {
    let skip = leading_crlf(buf);
    let rest = &buf[skip..];
    let header_len = match header_end(rest) {
        Some(n) if n <= MAX_HEADER_BYTES => n,
        Some(_) => return Err(FramingError::HeadersTooLong),
        // A datagram without a blank line: all of it is headers, no body.
        None if rest.len() <= MAX_HEADER_BYTES => rest.len(),
        None => return Err(FramingError::HeadersTooLong),
    };
    let available = rest.len() - header_len;
    let body_len = match content_length(&rest[..header_len])? {
        Some(declared) if declared > available => {
            return Err(FramingError::BodyTruncated {
                declared,
                available,
            });
        }
        Some(declared) => declared,
        None => available,
    };
    if body_len > MAX_BODY_BYTES {
        return Err(FramingError::BodyTooLarge(body_len));
    }
    Ok(Frame {
        skip,
        header_len,
        body_len,
    })
}

/// Frames the next message of a stream buffer. Content-Length is mandatory on streams
/// (RFC 3261 18.3); without it the body is taken as empty.
pub fn frame_stream(buf: &[u8]) -> Result<StreamFrame, FramingError> {
    let skip = leading_crlf(buf);
    let rest = &buf[skip..];
    let Some(header_len) = header_end(rest) else {
        if rest.len() > MAX_HEADER_BYTES {
            return Err(FramingError::HeadersTooLong);
        }
        return Ok(StreamFrame::Incomplete { keepalive: skip });
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(FramingError::HeadersTooLong);
    }
    let body_len = content_length(&rest[..header_len])?.unwrap_or(0);
    if body_len > MAX_BODY_BYTES {
        return Err(FramingError::BodyTooLarge(body_len));
    }
    if rest.len() < header_len + body_len {
        return Ok(StreamFrame::Incomplete { keepalive: skip });
    }
    Ok(StreamFrame::Complete(Frame {
        skip,
        header_len,
        body_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\nVia: x\r\n\r\nbodyEXTRA";

    #[test]
    fn datagram_uses_content_length_and_ignores_extra_octets() {
        let f = frame_datagram(MSG).unwrap();
        assert_eq!(f.body_len, 4);
        assert!(f.message(MSG).ends_with(b"\r\n\r\nbody"));
        let mut with_keepalive = b"\r\n\r\n".to_vec();
        with_keepalive.extend_from_slice(MSG);
        assert_eq!(frame_datagram(&with_keepalive).unwrap().skip, 4);
    }

    #[test]
    fn datagram_without_content_length_takes_the_rest() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nv=0\r\n";
        assert_eq!(frame_datagram(m).unwrap().body_len, 5);
        let lf_only = b"OPTIONS sip:a@b SIP/2.0\nContent-Length: 3\n\nabc";
        assert_eq!(frame_datagram(lf_only).unwrap().body_len, 3);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let long = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99\r\n\r\nshort";
        assert!(matches!(
            frame_datagram(long),
            Err(FramingError::BodyTruncated {
                declared: 99,
                available: 5
            })
        ));
        let neg = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(
            frame_datagram(neg),
            Err(FramingError::BadContentLength(_))
        ));
        let two = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 5\r\n\r\nhello";
        assert!(matches!(
            frame_datagram(two),
            Err(FramingError::BadContentLength(_))
        ));
        let huge = vec![b'a'; MAX_HEADER_BYTES + 10];
        assert_eq!(frame_datagram(&huge), Err(FramingError::HeadersTooLong));
    }

    #[test]
    fn stream_reports_incomplete_until_the_body_is_in() {
        for cut in 0..MSG.len() - 5 {
            assert!(
                matches!(
                    frame_stream(&MSG[..cut]),
                    Ok(StreamFrame::Incomplete { .. })
                ),
                "cut {cut}"
            );
        }
        let StreamFrame::Complete(f) = frame_stream(MSG).unwrap() else {
            panic!("complete")
        };
        assert_eq!(f.consumed(), MSG.len() - 5);
        assert_eq!(
            frame_stream(b"\r\n\r\n").unwrap(),
            StreamFrame::Incomplete { keepalive: 4 }
        );
    }
}
