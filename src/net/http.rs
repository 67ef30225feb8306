//! A small blocking HTTP/1.1 client (plain http, JSON replies) for the tests and tools that
//! talk to voxnav's own admin API and demo service, and the demo order service the demo
//! hotline looks orders up in, so the demo runs offline. Every wait is bounded by the timeout:
//! connect, write and read. Calls reach their backends through `backend` (HTTPS, trust and
//! credentials per backend), not this.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Performs one request; returns (status, body) or why it failed.
pub fn fetch(
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    fetch_with_headers(method, url, &[], body, timeout)
}

/// `fetch` with extra request headers (name, value), e.g. an Authorization header.
pub fn fetch_with_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream.set_write_timeout(Some(left())).ok();
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\
         {extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {} ms", timeout.as_millis()));
        }
        stream.set_read_timeout(Some(left())).ok();
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&chunk[..n]);
                if reply.len() > 1 << 20 {
                    return Err("reply larger than 1 MB".into());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("timed out after {} ms", timeout.as_millis()));
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP reply")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Decodes a chunked body (RFC 9112 7.1); trailers are ignored.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n").ok_or("truncated chunked body")?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after.get(..size).ok_or("truncated chunk")?;
        out.push_str(chunk);
        rest = after
            .get(size..)
            .and_then(|r| r.strip_prefix("\r\n"))
            .ok_or("chunk not followed by CRLF")?;
    }
}

/// One order of the demo order service.
pub struct DemoOrder {
    pub number: &'static str,
    pub status: &'static str,
    pub detail: &'static str,
    /// Who placed it (a caller number, as `sip::identity` gives it), if the demo knows.
    pub caller: Option<&'static str>,
    /// What a greeting says about it ("I see your order ... is on its way").
    pub headline: &'static str,
}

/// The demo orders; a caller's latest order is the last one listed for them.
pub const DEMO_ORDERS: &[DemoOrder] = &[
    DemoOrder {
        number: "472198",
        status: "shipped",
        detail: "It left our warehouse yesterday and should arrive on Thursday.",
        caller: Some("+15550100"),
        headline: "is on its way and should arrive on Thursday",
    },
    DemoOrder {
        number: "123456",
        status: "processing",
        detail: "We are packing it now; it will ship within one working day.",
        caller: None,
        headline: "is being packed and ships within one working day",
    },
    DemoOrder {
        number: "555123",
        status: "delivered",
        detail: "It was delivered on Monday and signed for at the front door.",
        caller: Some("+15550123"),
        headline: "was delivered on Monday",
    },
    DemoOrder {
        number: "900001",
        status: "cancelled",
        detail: "It was cancelled at your request and the refund is on its way.",
        caller: None,
        headline: "was cancelled and the refund is on its way",
    },
];

/// Serves `GET /orders/{number}` and `GET /callers/{caller number}/orders/latest` from
/// `DEMO_ORDERS` (404 with `{}` for unknown numbers) until the process ends. `delay` makes every reply slow, to exercise timeouts.
pub fn spawn_demo_orders(listen: &str, delay: Duration) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = answer(stream, delay);
            });
        }
    });
    Ok(addr)
}

fn answer(stream: TcpStream, delay: Duration) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Drain the headers.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    std::thread::sleep(delay);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let found = if let Some(number) = path.strip_prefix("/orders/") {
        DEMO_ORDERS.iter().find(|o| o.number == number)
    } else if let Some(caller) =
        (path.strip_prefix("/callers/")).and_then(|rest| rest.strip_suffix("/orders/latest"))
    {
        let caller = caller.replace("%2B", "+");
        (DEMO_ORDERS.iter().rev()).find(|o| o.caller == Some(caller.as_str()))
    } else {
        None
    };
    let (status, body) = match found {
        Some(o) => (
            "200 OK",
            serde_json::json!({
                "order": o.number, "status": o.status, "detail": o.detail, "headline": o.headline,
            })
            .to_string(),
        ),
        None => ("404 Not Found", "{}".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A query or path component percent-encoded: everything but RFC 3986's unreserved
/// characters (section 2.3) is escaped.
pub fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_orders_found_missing_and_slow() {
        let addr = spawn_demo_orders("127.0.0.1:0", Duration::ZERO).unwrap();
        let (status, body) = fetch(
            "GET",
            &format!("http://{addr}/orders/472198"),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("\"status\":\"shipped\""), "{body}");
        let (status, _) = fetch(
            "GET",
            &format!("http://{addr}/orders/1"),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(status, 404);
        let latest = |caller: &str| {
            let url = format!("http://{addr}/callers/{caller}/orders/latest");
            fetch("GET", &url, None, Duration::from_secs(2)).unwrap()
        };
        let (status, body) = latest("+15550100");
        assert_eq!(status, 200);
        assert!(body.contains("\"order\":\"472198\""), "{body}");
        assert!(body.contains("on its way"), "{body}");
        assert_eq!(latest("%2B15550123").0, 200);
        assert_eq!(latest("anonymous").0, 404);
        assert_eq!(latest("").0, 404);
        let slow = spawn_demo_orders("127.0.0.1:0", Duration::from_millis(800)).unwrap();
        let started = Instant::now();
        let err = fetch(
            "GET",
            &format!("http://{slow}/orders/472198"),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(700));
        assert!(fetch("GET", "ftp://x/y", None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn chunked_replies_are_decoded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":\"b\r\n2;x=y\r\n\"}\r\n0\r\n\r\n");
        });
        let (status, body) = fetch(
            "GET",
            &format!("http://{addr}/x"),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!((status, body.as_str()), (200, "{\"a\":\"b\"}"));
        assert!(dechunk("5\r\nab").is_err());
        assert!(dechunk("zz\r\n").is_err());
    }
}
