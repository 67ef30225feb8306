//! Where a transfer rings. Transfers are bridged: the call driver dials the seat
//! (`net::leg`), the session plays hold audio while it rings and then relays audio both ways
//! (`call::session`); the reason and the transcript travel in the INVITE (`X-Voxnav-Reason`,
//! `X-Voxnav-Transcript`, `X-Voxnav-Call`). Busy, no answer or an unreachable seat come back
//! as a failure the dialplan handles (its `fallback`).
//!
//! `AgentDirectory` is the seam for agent queues: today a queue name maps to one SIP URI (or a
//! default seat); a skills-based queue picks the URI there instead.

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a dialplan's transfer targets (`queue:billing`, or a `sip:` URI) are dialled.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory {
    /// Queue name -> the seat's SIP URI.
    pub queues: BTreeMap<String, String>,
    /// The seat for queues not listed.
    pub default: Option<String>,
    /// How long an agent's phone may ring before the caller goes back to the dialplan.
    pub ring_timeout: Duration,
}

impl AgentDirectory {
    /// The SIP URI to call for a transfer target, if any seat is configured for it.
    pub fn resolve(&self, target: &str) -> Option<String> {
        if target.starts_with("sip:") {
            return Some(target.to_string());
        }
        let queue = target.strip_prefix("queue:").unwrap_or(target);
        self.queues.get(queue).or(self.default.as_ref()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_resolve_to_seats_with_a_default() {
        let mut d = AgentDirectory::default();
        assert_eq!(d.resolve("queue:billing"), None, "no seat configured");
        assert_eq!(d.resolve("sip:a@h").as_deref(), Some("sip:a@h"));
        d.default = Some("sip:desk@192.0.2.1".into());
        d.queues
            .insert("billing".into(), "sip:billing@192.0.2.2".into());
        assert_eq!(
            d.resolve("queue:billing").as_deref(),
            Some("sip:billing@192.0.2.2")
        );
        assert_eq!(
            d.resolve("queue:general").as_deref(),
            Some("sip:desk@192.0.2.1")
        );
    }
}
