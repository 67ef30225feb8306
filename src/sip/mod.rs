//! SIP, sans-IO: bytes in, verdicts and bytes out; no sockets here (`net/` will own them).
//!
//! ```text
//! datagram / stream bytes
//!   -> framing   (RFC 3261 18.3: one message, Content-Length, "incomplete" on streams)
//!   -> envelope  (RFC 3261 7: start line, unfolded headers, compact names, body)
//!   -> validate  (RFC 3261 8.2 UAS checks; RFC 4475 verdicts: process, 4xx/5xx, or drop)
//!   -> response  (RFC 3261 8.2.6.2 copies; 18.2.2 + RFC 3581 routing)
//! ```
//!
//! Transactions, dialogs and SDP come next (see the SIP issue); they consume `Verdict::Request`
//! and `Verdict::Response` messages from here.

pub mod admission;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod envelope;
pub mod framing;
pub mod identity;
pub mod register;
pub mod registrar;
pub mod response;
pub mod sdp;
pub mod session_timer;
pub mod transaction;
pub mod uac;
pub mod validate;

use std::net::SocketAddr;

pub use envelope::Envelope;
pub use validate::{Verdict, validate};

/// What to do with one received datagram: the verdict, the scanned message, and the response
/// to send (for rejections) with its destination.
#[derive(Debug)]
pub struct Judged {
    pub verdict: Verdict,
    pub envelope: Option<Envelope>,
    pub reply: Option<(Vec<u8>, SocketAddr)>,
}

/// Frames, scans and validates one UDP datagram from `source`; builds the stateless reply for a
/// rejection. Never panics on any input (fuzzed and torture-tested).
pub fn judge_datagram(datagram: &[u8], source: SocketAddr, to_tag: &str) -> Judged {
    let framed = framing::frame_datagram(datagram);
    let frame = match framed {
        Ok(f) => f,
        Err(e) => {
            // Still answer a request whose headers we can read (a 400 for a bad length).
            let whole = framing::Frame {
                skip: 0,
                header_len: datagram.len(),
                body_len: 0,
            };
            let env = Envelope::scan(datagram, &whole).filter(|e| !e.is_response());
            let reply = env.as_ref().filter(|e| has_reply_headers(e)).map(|e| {
                (
                    response::build(e, 400, "Bad Request", to_tag, &[], source),
                    response::target(e, source),
                )
            });
            let verdict = match reply {
                Some(_) => Verdict::Reject(validate::Rejection {
                    status: 400,
                    reason: "Bad Request",
                    headers: Vec::new(),
                    why: e.to_string(),
                }),
                None => Verdict::Drop(e.to_string()),
            };
            return Judged {
                verdict,
                envelope: env,
                reply,
            };
        }
    };
    let Some(env) = Envelope::scan(datagram, &frame) else {
        return Judged {
            verdict: Verdict::Drop("no start line".into()),
            envelope: None,
            reply: None,
        };
    };
    let mut verdict = validate(&env);
    let reply = match &verdict {
        // ACK is never answered (RFC 3261 17.2.1); without the headers a reply cannot be built.
        Verdict::Reject(_) if env.method() == Some("ACK") || !has_reply_headers(&env) => {
            verdict = Verdict::Drop(format!("{verdict:?} but no response can be sent"));
            None
        }
        Verdict::Reject(r) => Some((
            response::build(&env, r.status, r.reason, to_tag, &r.headers, source),
            response::target(&env, source),
        )),
        _ => None,
    };
    Judged {
        verdict,
        envelope: Some(env),
        reply,
    }
}

/// A response needs a Via to be routed (and Call-ID/CSeq to be matched by the client).
fn has_reply_headers(env: &Envelope) -> bool {
    env.count("Via") > 0
}
