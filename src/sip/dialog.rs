//! Dialogs (RFC 3261 section 12) as the UAS sees them, and the BYE voxnav sends itself.
//!
//! ```text
//!   INVITE --answer_call (200)--> Answered --ACK--> Confirmed --BYE (either side)--> ended
//!                                    \--no ACK by 64*T1--> BYE sent (13.3.1.4)
//! ```
//! A dialog is identified by Call-ID and the two tags (12.1.1); voxnav's own BYE is a client
//! non-INVITE transaction: resent at T1 doubling to T2 (Timer E) until any final response, and
//! abandoned at 64*T1 (Timer F), after which the call is torn down locally all the same. Our
//! REFER (RFC 3515: a blind transfer through the PBX the call came from) is sent the same way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::endpoint::Transmit;
use super::envelope::Envelope;
use super::sdp::Negotiated;

/// Where a dialog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE received, waiting for the driver to answer.
    Offered,
    /// 200 sent, waiting for the ACK.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// BYE sent by us, waiting for its response.
    Terminating,
}

/// One call's signalling state.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The caller's From header (our To in requests we send) and our To (their From).
    pub remote_name_addr: String,
    pub local_name_addr: String,
    /// Where requests in the dialog go (the Contact URI; we send to the INVITE's source).
    pub remote_target: String,
    /// The route set (RFC 3261 12.1.1: the INVITE's Record-Route values, in order): our
    /// requests carry them as Route headers, so a proxy that record-routed (Kamailio in front
    /// of several voxnav nodes) stays on the path. The first hop is the INVITE's source.
    pub route_set: Vec<String>,
    pub peer: SocketAddr,
    /// The peer is a listed trunk or proved who it is (digest): its P-Asserted-Identity
    /// names the caller (RFC 3325).
    pub trusted: bool,
    /// The transport the INVITE came on; our requests (BYE) use it too.
    pub transport: super::endpoint::Transport,
    pub state: DialogState,
    /// The next CSeq number of requests we send.
    pub local_cseq: u32,
    /// The media agreed in the last offer/answer.
    pub media: Option<Negotiated>,
    /// Our RTP address, once the call was answered.
    pub local_rtp: Option<SocketAddr>,
    /// The envelope of the INVITE, for building its response.
    pub invite: Envelope,
    /// BYE we sent: bytes, next resend, interval, give-up deadline.
    pub bye: Option<PendingRequest>,
    /// REFER we sent, until its final response.
    pub refer: Option<PendingRequest>,
    /// A REFER asked for before the caller's ACK: sent when it comes (a request of ours in
    /// a dialog the caller has not confirmed could overtake the ACK).
    pub refer_on_ack: Option<String>,
    /// The session interval agreed (RFC 4028), in seconds, and when voxnav sends BYE unless
    /// the caller refreshes first.
    pub session_interval: Option<u32>,
    pub session_deadline: Option<Instant>,
}

/// voxnav's own BYE or REFER in flight.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub branch: String,
    pub bytes: Vec<u8>,
    pub next: Instant,
    pub interval: Duration,
    pub give_up: Instant,
}

/// The tag parameter of a From/To value.
pub fn tag_of(name_addr: &str) -> String {
    let params = name_addr.rsplit_once('>').map_or(name_addr, |(_, p)| p);
    params
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The URI inside a Contact value (`<sip:...>` or a bare URI).
pub fn contact_uri(contact: &str) -> Option<String> {
    let c = contact.trim();
    if let Some(start) = c.find('<') {
        let end = c[start..].find('>')? + start;
        return Some(c[start + 1..end].to_string());
    }
    Some(c.split(';').next()?.trim().to_string()).filter(|u| !u.is_empty())
}

impl Dialog {
    /// Builds a request of ours in the dialog (RFC 3261 12.2.1.1): From is our side with our
    /// tag, To theirs, the next CSeq, the route set; `extra` headers before Content-Length.
    fn request(&mut self, method: &str, local_via: &str, branch: &str, extra: &str) -> Vec<u8> {
        self.local_cseq += 1;
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {local_via};branch={branch};rport\r\nMax-Forwards: 70\r\n\
             {routes}From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nUser-Agent: voxnav\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            target = self.remote_target,
            routes = if self.route_set.is_empty() {
                String::new()
            } else {
                format!("Route: {}\r\n", self.route_set.join(", "))
            },
            from = self.local_name_addr,
            to = self.remote_name_addr,
            call_id = self.call_id,
            cseq = self.local_cseq,
            transport = self.transport.via_name(),
        )
        .into_bytes()
    }

    /// Builds our BYE (RFC 3261 15.1.1).
    pub fn bye(&mut self, local_via: &str, branch: String, now: Instant, t1: Duration) -> Transmit {
        let bytes = self.request("BYE", local_via, &branch, "");
        self.state = DialogState::Terminating;
        self.bye = Some(PendingRequest::new(branch, bytes.clone(), now, t1));
        Transmit {
            to: self.peer,
            bytes,
        }
    }

    /// Builds our REFER (RFC 3515 section 2.4): the peer (a PBX) is asked to call
    /// `refer_to` and connect the caller there. Referred-By (RFC 3892) names voxnav; the
    /// Contact is ours, as in any target refresh. The PBX reports how its call goes in
    /// NOTIFYs (`message/sipfrag`).
    pub fn refer(
        &mut self,
        local_via: &str,
        branch: String,
        refer_to: &str,
        now: Instant,
        t1: Duration,
    ) -> Transmit {
        let ours = super::dialog::contact_uri(&self.local_name_addr)
            .unwrap_or_else(|| format!("sip:voxnav@{local_via}"));
        let extra = format!(
            "Refer-To: <{refer_to}>\r\nReferred-By: <{ours}>\r\nContact: <sip:voxnav@{local_via}>\r\n"
        );
        let bytes = self.request("REFER", local_via, &branch, &extra);
        self.refer = Some(PendingRequest::new(branch, bytes.clone(), now, t1));
        Transmit {
            to: self.peer,
            bytes,
        }
    }
}

impl PendingRequest {
    fn new(branch: String, bytes: Vec<u8>, now: Instant, t1: Duration) -> Self {
        Self {
            branch,
            bytes,
            next: now + t1,
            interval: t1,
            give_up: now + 64 * t1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_contacts() {
        assert_eq!(tag_of("\"A\" <sip:a@b;x=1>;tag=abc;foo"), "abc");
        assert_eq!(tag_of("sip:a@b;tag=q"), "q");
        assert_eq!(tag_of("<sip:a@b>"), "");
        assert_eq!(
            contact_uri("\"Bob\" <sip:bob@192.0.2.4:5070;transport=udp>;expires=3").as_deref(),
            Some("sip:bob@192.0.2.4:5070;transport=udp")
        );
        assert_eq!(contact_uri("sip:bob@h;q=1").as_deref(), Some("sip:bob@h"));
        assert_eq!(contact_uri("<sip:broken"), None);
    }
}
