//! Where a transfer rings. Transfers are bridged: the call driver dials the seat
//! (`net::leg`), the session plays hold audio while it rings and then relays audio both ways
//! (`call::session`); the reason and the transcript travel in the INVITE (`X-Voxnav-Reason`,
//! `X-Voxnav-Transcript`, `X-Voxnav-Call`). Busy, no answer or an unreachable seat come back
//! as a failure the dialplan handles (its `fallback`).
//!
//! `AgentDirectory` is the seam for agent queues: a queue of the agents file goes to its best
//! available agent's registered phone (`routing::Acd`); any other queue maps to one SIP URI
//! (or a default seat).

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a dialplan's transfer targets (`queue:billing`, or a `sip:` URI) are dialled.
#[derive(Debug, Clone, Default)]
pub struct AgentDirectory {
    /// Queue name -> the seat's SIP URI.
    pub queues: BTreeMap<String, String>,
    /// The seat for queues not listed.
    pub default: Option<String>,
    /// Queues the PBX the call came through takes back by SIP REFER (RFC 3515), and the
    /// URI it is asked to call (`transfer.refer`): nothing is bridged through voxnav.
    pub refer: BTreeMap<String, String>,
    /// How long an agent's phone may ring before the caller goes back to the dialplan.
    pub ring_timeout: Duration,
    /// How long a caller may wait for a free agent of a queue of the agents file
    /// (`transfer.queue_wait_s`; zero: the fallback at once).
    pub queue_wait: Duration,
    /// How often a waiting caller hears their place in the line (zero: never).
    pub announce_every: Duration,
    /// An agent's phone silent this long mid-call is gone (`transfer.agent_silence_s`;
    /// None: never).
    pub agent_silence: Option<Duration>,
    /// Agent assist (`transfer.assist`): the caller's words to an agent are recognised
    /// and matched against the knowledge base for the agent's desktop.
    pub assist: bool,
    /// Warm transfer (`transfer.warm`): the agent hears who calls and why before the caller
    /// is put through.
    pub warm: bool,
    /// Where `voicemail` nodes save the callers' messages (`QUEUE/CALL.wav` and `.json`).
    pub messages_dir: std::path::PathBuf,
    /// Where `callback` nodes' requests go (None: no agents file or no
    /// `transfer.callback_uri`).
    pub callbacks:
        Option<tokio::sync::mpsc::UnboundedSender<crate::call::callback::CallbackRequest>>,
    /// The agents of the agents file, their states and phones (None: no agents file).
    pub acd: Option<std::sync::Arc<crate::routing::Acd>>,
    /// The agents' browser phones on the desk (None: no agents file).
    pub web_phones: Option<std::sync::Arc<crate::net::webphone::WebPhones>>,
}

/// Why nobody can be rung for a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// The queue has agents, none free now: the caller may wait.
    #[error("no agent of queue {0} is available")]
    NobodyFree(String),
    /// No agent and no seat for this target.
    #[error("no agent seat configured for {0}")]
    NoSeat(String),
}

/// Where a transfer rings, and the agent whose phone it is (a queue of the agents file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub uri: String,
    pub agent: Option<String>,
}

impl AgentDirectory {
    /// Where `call`'s transfer to `target` rings: a queue of the agents file picks its best
    /// available agent with a registered phone (set ringing); another queue, its seat. The
    /// error says why nobody can be rung (the caller may wait, or the dialplan's fallback
    /// follows).
    pub fn route(&self, target: &str, call: &str, priority: u8) -> Result<Route, NoRoute> {
        let queue = target.strip_prefix("queue:").unwrap_or(target);
        if let Some(acd) = self
            .acd
            .as_ref()
            .filter(|a| !target.starts_with("sip:") && a.serves(queue))
        {
            if let Some((agent, uri)) = acd.pick(queue, call, priority) {
                return Ok(Route {
                    uri,
                    agent: Some(agent),
                });
            }
            return match self.queues.get(queue) {
                Some(seat) => {
                    // Out of any waiting line: a stale entry would hold up those behind.
                    acd.leave(call, crate::routing::Leaving::Elsewhere);
                    Ok(Route {
                        uri: seat.clone(),
                        agent: None,
                    })
                }
                None => Err(NoRoute::NobodyFree(queue.to_string())),
            };
        }
        if let Some(acd) = &self.acd {
            acd.leave(call, crate::routing::Leaving::Elsewhere);
        }
        self.resolve(target)
            .map(|uri| Route { uri, agent: None })
            .ok_or_else(|| NoRoute::NoSeat(target.to_string()))
    }

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

    #[test]
    fn a_queue_of_the_agents_file_goes_to_its_available_agents_phone() {
        use crate::report::{Observer, Report};
        use crate::routing::{Acd, Requested};
        let source = format!(
            "agents:\n  alice:\n    queues: [general]\n{}",
            crate::agents::hash_lines("alice", "voxnav", "pw")
        );
        let book = crate::agents::load_str("agents.yaml", &source).unwrap();
        let acd = std::sync::Arc::new(Acd::new(&book, Duration::from_secs(5)));
        let mut d = AgentDirectory {
            acd: Some(acd.clone()),
            default: Some("sip:desk@192.0.2.1".into()),
            ..Default::default()
        };
        // Alice is logged out: nobody to ring (the default seat is not the queue's agent).
        let nobody = Err(NoRoute::NobodyFree("general".into()));
        assert_eq!(d.route("queue:general", "c1", 0), nobody);
        // A queue without agents keeps its seat.
        assert_eq!(
            d.route("queue:sales", "c1", 0).unwrap().uri,
            "sip:desk@192.0.2.1"
        );
        // Available, but no phone registered yet.
        acd.request("alice", Requested::Available).unwrap();
        assert_eq!(d.route("queue:general", "c1", 0), nobody);
        acd.observe(&Report::AgentContacts {
            agent: "alice".into(),
            contacts: vec!["sip:alice@10.0.0.5".into()],
        });
        assert_eq!(
            d.route("queue:general", "c2", 0),
            Ok(Route {
                uri: "sip:alice@10.0.0.5".into(),
                agent: Some("alice".into())
            })
        );
        // Her phone rings with that call: the next caller finds nobody, or the queue's seat.
        assert_eq!(d.route("queue:general", "c3", 0), nobody);
        d.queues
            .insert("general".into(), "sip:overflow@192.0.2.9".into());
        assert_eq!(
            d.route("queue:general", "c3", 0).unwrap().uri,
            "sip:overflow@192.0.2.9"
        );
    }
}
