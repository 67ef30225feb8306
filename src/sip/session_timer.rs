//! Session timers (RFC 4028), the UAS side: a caller that supports them asks for a session
//! interval in `Session-Expires`; the caller refreshes the session (re-INVITE or UPDATE) before
//! it expires, and if no refresh comes, voxnav ends the call with a BYE. This is what tears down
//! a call whose BYE was lost or whose caller vanished without one.
//!
//! - An interval below our `Min-SE` is refused with 422 and `Min-SE` (RFC 4028 8.1).
//! - voxnav never refreshes itself: the caller is the refresher (`refresher=uac`). When the
//!   caller does not support the extension (no `timer` in Supported) or asks voxnav to refresh
//!   (`refresher=uas`), the call runs without a session timer and the RTP inactivity timeout is
//!   the backstop; this is allowed for a UAS that does not use the extension for a call (9).
//! - The side that does not refresh sends BYE shortly before expiry: at the interval minus the
//!   smaller of 32 s and a third of it (10).

use std::time::Duration;

use super::envelope::Envelope;

/// The smallest interval voxnav accepts (the RFC 4028 default, 4).
pub const MIN_SE: u32 = 90;

/// What the INVITE (or refresh) asked for, as voxnav will honour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// No session timer for this call.
    None,
    /// Run a session timer with this interval (seconds); the caller refreshes.
    Use(u32),
    /// The interval is below `MIN_SE`: answer 422 with `Min-SE`.
    TooSmall,
}

fn has_timer_tag(env: &Envelope, header: &str) -> bool {
    env.all(header)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("timer"))
}

/// Reads `Session-Expires` (compact `x`) with its `refresher` parameter.
pub fn negotiate(env: &Envelope) -> Negotiation {
    let Some(value) = env.get("Session-Expires") else {
        return Negotiation::None;
    };
    let mut parts = value.split(';');
    let Ok(interval) = parts.next().unwrap_or_default().trim().parse::<u32>() else {
        return Negotiation::None;
    };
    if interval < MIN_SE {
        return Negotiation::TooSmall;
    }
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    let caller_supports = has_timer_tag(env, "Supported") || has_timer_tag(env, "Require");
    if !caller_supports || refresher.as_deref() == Some("uas") {
        return Negotiation::None;
    }
    Negotiation::Use(interval)
}

/// Headers for the 2xx that accepts a session timer (RFC 4028 9).
pub fn response_headers(interval: u32) -> Vec<(String, String)> {
    vec![
        (
            "Session-Expires".to_string(),
            format!("{interval};refresher=uac"),
        ),
        ("Require".to_string(), "timer".to_string()),
    ]
}

/// How long after a (re)fresh voxnav waits before sending BYE (RFC 4028 10).
pub fn teardown_after(interval: u32) -> Duration {
    Duration::from_secs((interval - (interval / 3).min(32)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(headers: &str) -> Envelope {
        let text = format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        let frame = super::super::framing::frame_datagram(text.as_bytes()).unwrap();
        Envelope::scan(text.as_bytes(), &frame).unwrap()
    }

    #[test]
    fn negotiation_follows_rfc_4028() {
        assert_eq!(negotiate(&invite("")), Negotiation::None);
        assert_eq!(
            negotiate(&invite("Supported: timer\r\nSession-Expires: 1800\r\n")),
            Negotiation::Use(1800)
        );
        assert_eq!(
            negotiate(&invite("k: 100rel, timer\r\nx: 120;refresher=uac\r\n")),
            Negotiation::Use(120)
        );
        assert_eq!(
            negotiate(&invite("Supported: timer\r\nSession-Expires: 60\r\n")),
            Negotiation::TooSmall
        );
        // Inserted by a proxy for a caller without the extension, or asking us to refresh.
        assert_eq!(
            negotiate(&invite("Session-Expires: 1800\r\n")),
            Negotiation::None
        );
        assert_eq!(
            negotiate(&invite(
                "Supported: timer\r\nSession-Expires: 1800;refresher=uas\r\n"
            )),
            Negotiation::None
        );
        assert_eq!(
            negotiate(&invite("Supported: timer\r\nSession-Expires: soon\r\n")),
            Negotiation::None
        );
    }

    #[test]
    fn teardown_comes_before_expiry() {
        assert_eq!(teardown_after(1800), Duration::from_secs(1768));
        assert_eq!(teardown_after(90), Duration::from_secs(60));
    }
}
