//! Building a response to a request, and where to send it.
//!
//! RFC 3261 8.2.6.2: a response copies the request's Via headers (in order), From, To, Call-ID
//! and CSeq, and adds a To tag unless it is a 100. RFC 3261 18.2.2 with RFC 3581: the top Via
//! gets `received` (the source IP) and, if the client asked with an empty `rport`, the source
//! port, and the response goes back to the source IP at that port (or the sent-by port).
//! RFC 3261 12.1.1: a response that creates a dialog (18x, 2xx to an INVITE) copies the
//! request's Record-Route values, so the proxies that asked stay on the dialog's path.

use std::net::SocketAddr;

use super::dialog::tag_of;
use super::envelope::Envelope;
use super::validate::split_outside_quotes;

/// Serialises a response to `request` with no body.
pub fn build(
    request: &Envelope,
    status: u16,
    reason: &str,
    to_tag: &str,
    extra_headers: &[(String, String)],
    source: SocketAddr,
) -> Vec<u8> {
    build_with_body(request, status, reason, to_tag, extra_headers, source, None)
}

/// Serialises a response to `request`, with an optional (content type, body).
pub fn build_with_body(
    request: &Envelope,
    status: u16,
    reason: &str,
    to_tag: &str,
    extra_headers: &[(String, String)],
    source: SocketAddr,
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    // Copy the Via entries in order, one per line; entries too broken to parse (RFC 4475
    // 3.1.2.1 has `;;,;,,`) are left out rather than echoed into an invalid response.
    let vias = request
        .all("Via")
        .flat_map(|v| split_outside_quotes(v, ','))
        .map(str::trim)
        .filter(|v| copyable_via(v));
    for (i, via) in vias.enumerate() {
        let via = if i == 0 {
            stamp_top_via(via, source)
        } else {
            via.to_string()
        };
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(value) = request.get(name) {
            let value = if name == "To" && status > 100 && tag_of(value).is_empty() {
                format!("{value};tag={to_tag}")
            } else {
                value.to_string()
            };
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if request.method() == Some("INVITE") && (101..300).contains(&status) {
        for route in request.all("Record-Route") {
            out.push_str(&format!("Record-Route: {route}\r\n"));
        }
    }
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Server: voxnav\r\n");
    let mut bytes = match body {
        Some((content_type, body)) => {
            out.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ));
            let mut b = out.into_bytes();
            b.extend_from_slice(body);
            b
        }
        None => {
            out.push_str("Content-Length: 0\r\n\r\n");
            out.into_bytes()
        }
    };
    bytes.shrink_to_fit();
    bytes
}

/// A Via entry worth echoing: a protocol and a sent-by before the parameters. Stricter
/// validity is not required: a 505 must echo the `SIP/7.0` Via of the request it rejects.
fn copyable_via(entry: &str) -> bool {
    let head = entry.split(';').next().unwrap_or_default();
    let mut words = head.split_whitespace();
    words.next().is_some_and(|proto| proto.contains('/')) && words.next().is_some()
}

/// Adds `received` and fills an empty `rport` (RFC 3581 4) on the top Via entry; empty
/// parameters (`;;`) are dropped.
fn stamp_top_via(via: &str, source: SocketAddr) -> String {
    let mut params: Vec<String> = via
        .split(';')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    for p in params.iter_mut().skip(1) {
        if p.eq_ignore_ascii_case("rport") {
            *p = format!("rport={}", source.port());
        }
    }
    params.retain(|p| !p.to_ascii_lowercase().starts_with("received"));
    params.push(format!("received={}", source.ip()));
    params.join(";")
}

/// Where to send the response for an unreliable transport (RFC 3261 18.2.2, RFC 3581 4): the
/// source IP, at the source port if `rport` was asked for, else the sent-by port (default 5060).
pub fn target(request: &Envelope, source: SocketAddr) -> SocketAddr {
    let top = request.get("Via").unwrap_or_default();
    let first = top.split(',').next().unwrap_or_default();
    let mut parts = first.split(';');
    let sent_by = parts
        .next()
        .and_then(|p| p.split_whitespace().last())
        .unwrap_or_default();
    let wants_rport = parts.any(|p| p.trim().eq_ignore_ascii_case("rport"));
    if wants_rport {
        return source;
    }
    let port = sent_by
        .rsplit_once(':')
        .filter(|(host, _)| !host.ends_with(']') || sent_by.starts_with('['))
        .and_then(|(_, port)| port.parse().ok())
        .filter(|_| !sent_by.ends_with(']'))
        .unwrap_or(5060);
    SocketAddr::new(source.ip(), port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framing::frame_datagram;

    fn env(msg: &str) -> Envelope {
        Envelope::scan(msg.as_bytes(), &frame_datagram(msg.as_bytes()).unwrap()).unwrap()
    }

    const REQ: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP client.example:5070;branch=z9hG4bK1;rport\r\nVia: SIP/2.0/UDP proxy;branch=z9hG4bK0\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";

    #[test]
    fn copies_headers_adds_tag_and_stamps_via() {
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let r = String::from_utf8(build(
            &env(REQ),
            200,
            "OK",
            "abc",
            &[("Allow".into(), "INVITE".into())],
            src,
        ))
        .unwrap();
        assert!(r.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(r.contains("Via: SIP/2.0/UDP client.example:5070;branch=z9hG4bK1;rport=40000;received=192.0.2.7\r\n"));
        assert!(r.contains("Via: SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n"));
        assert!(r.contains("To: <sip:a@b>;tag=abc\r\n"));
        assert!(r.contains("Allow: INVITE\r\n") && r.ends_with("Content-Length: 0\r\n\r\n"));
        // Both Vias go back (the proxy strips its own); with only the top one, the reply is a
        // valid response as a UA receives it.
        let back = env(&r);
        assert_eq!(back.count("Via"), 2);
        let direct = env(&r.replace("Via: SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n", ""));
        assert_eq!(
            crate::sip::validate::validate(&direct),
            crate::sip::validate::Verdict::Response
        );
    }

    #[test]
    fn routes_per_rport_or_sent_by_port() {
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        assert_eq!(target(&env(REQ), src), src);
        let no_rport = REQ.replace(";rport", "");
        assert_eq!(
            target(&env(&no_rport), src),
            "192.0.2.7:5070".parse::<std::net::SocketAddr>().unwrap()
        );
        let default_port = REQ.replace(
            "client.example:5070;branch=z9hG4bK1;rport",
            "client;branch=z9hG4bK1",
        );
        assert_eq!(
            target(&env(&default_port), src),
            "192.0.2.7:5060".parse::<std::net::SocketAddr>().unwrap()
        );
        let v6 = REQ.replace(
            "client.example:5070;branch=z9hG4bK1;rport",
            "[2001:db8::1];branch=z9hG4bK1",
        );
        assert_eq!(
            target(&env(&v6), "[2001:db8::1]:4000".parse().unwrap()),
            "[2001:db8::1]:5060"
                .parse::<std::net::SocketAddr>()
                .unwrap()
        );
    }
}
