//! The ACD's first part (issue 15): agent states and the choice of an agent for a transfer to
//! a queue. Sans-IO: `Router` takes `now` and returns decisions; `Acd` is the shared handle
//! calls and the admin API use, and it learns the agents' registered phones from the reports
//! (`Report::AgentContacts`).
//!
//! - States: logged out, available, ringing, on a call, wrap-up (timed), on a break. An agent
//!   sets logged out, available or break (`POST /api/agents/ID/state`); ringing, on a call and
//!   wrap-up follow the calls. Every change is printed (`voxnav: agent alice is available`).
//! - A transfer to `queue:NAME` goes to an available agent of that queue with a registered
//!   phone: the highest level in the skill named like the queue first, then the one idle
//!   longest. Wrap-up ends by itself after the hotline's wrap-up time.
//! - The agent who lets it ring out (or refuses) is set on a break: not offered calls again
//!   until they say they are available (the "not ready").
//!
//! - A caller who finds nobody free waits (with the hold audio) up to `transfer.queue_wait_s`:
//!   the callers of a queue are served in the order they came, each by the best free agent
//!   as above; after the wait, the dialplan's fallback.
//!
//! Not built yet: priorities, overflow to voicemail or a callback, position announcements.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agents::AgentBook;
use crate::report::{Observer, Report};

/// How long wrap-up lasts after an agent's call ends.
pub const DEFAULT_WRAP_UP: Duration = Duration::from_secs(10);

/// An agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Available,
    /// Their phone rings with this call.
    Ringing(String),
    /// Talking on this call.
    OnCall(String),
    /// After a call, until this instant.
    WrapUp(Instant),
    Break,
}

impl AgentState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::LoggedOut => "logged_out",
            Self::Available => "available",
            Self::Ringing(_) => "ringing",
            Self::OnCall(_) => "on_call",
            Self::WrapUp(_) => "wrap_up",
            Self::Break => "break",
        }
    }
}

/// What an agent may ask for themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    LoggedOut,
    Available,
    Break,
}

impl Requested {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "logged_out" => Some(Self::LoggedOut),
            "available" => Some(Self::Available),
            "break" => Some(Self::Break),
            _ => None,
        }
    }
}

/// Why a state change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("no agent {0} in the agents file")]
    UnknownAgent(String),
    #[error("agent {0} is {1}: the state follows the call until it ends")]
    Busy(String, &'static str),
}

#[derive(Debug, Clone)]
struct Slot {
    state: AgentState,
    /// When the state last changed (idle since, for an available agent).
    since: Instant,
    queues: Vec<String>,
    skills: BTreeMap<String, u8>,
}

/// A state change, for the log and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub agent: String,
    pub state: &'static str,
}

/// The agents' states and the choice of an agent, sans-IO.
#[derive(Debug, Default)]
pub struct Router {
    agents: BTreeMap<String, Slot>,
    wrap_up: Duration,
    /// Each queue's waiting callers, first come first.
    waiting: BTreeMap<String, std::collections::VecDeque<String>>,
}

impl Router {
    pub fn new(wrap_up: Duration) -> Self {
        Self {
            agents: BTreeMap::new(),
            wrap_up,
            waiting: BTreeMap::new(),
        }
    }

    /// The agents file (again): new agents start logged out, agents still listed keep their
    /// state, agents removed are forgotten.
    pub fn set_agents(&mut self, book: &AgentBook, now: Instant) {
        self.agents.retain(|id, _| book.agents.contains_key(id));
        for (id, agent) in &book.agents {
            let slot = self.agents.entry(id.clone()).or_insert(Slot {
                state: AgentState::LoggedOut,
                since: now,
                queues: Vec::new(),
                skills: BTreeMap::new(),
            });
            slot.queues = agent.queues.clone();
            slot.skills = agent.skills.clone();
        }
    }

    fn set(&mut self, agent: &str, state: AgentState, now: Instant) -> Option<Change> {
        let slot = self.agents.get_mut(agent)?;
        slot.state = state;
        slot.since = now;
        Some(Change {
            agent: agent.to_string(),
            state: slot.state.name(),
        })
    }

    /// Ends wrap-ups that are over.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Change> {
        let over: Vec<String> = (self.agents.iter())
            .filter(|(_, s)| matches!(s.state, AgentState::WrapUp(until) if until <= now))
            .map(|(id, _)| id.clone())
            .collect();
        (over.iter())
            .filter_map(|id| self.set(id, AgentState::Available, now))
            .collect()
    }

    /// An agent's own change (from the API).
    pub fn request(
        &mut self,
        agent: &str,
        requested: Requested,
        now: Instant,
    ) -> Result<Option<Change>, StateError> {
        let slot = (self.agents.get(agent)).ok_or(StateError::UnknownAgent(agent.into()))?;
        if let AgentState::Ringing(_) | AgentState::OnCall(_) = slot.state {
            return Err(StateError::Busy(agent.into(), slot.state.name()));
        }
        let state = match requested {
            Requested::LoggedOut => AgentState::LoggedOut,
            Requested::Available => AgentState::Available,
            Requested::Break => AgentState::Break,
        };
        if slot.state == state {
            return Ok(None);
        }
        Ok(self.set(agent, state, now))
    }

    /// `call` waits for an agent of `queue` (after the callers already waiting).
    pub fn wait(&mut self, queue: &str, call: &str) {
        let line = self.waiting.entry(queue.to_string()).or_default();
        if !line.iter().any(|c| c == call) {
            line.push_back(call.to_string());
        }
    }

    /// `call` no longer waits (served, hung up, or waited too long).
    pub fn leave(&mut self, call: &str) {
        for line in self.waiting.values_mut() {
            line.retain(|c| c != call);
        }
        self.waiting.retain(|_, line| !line.is_empty());
    }

    /// Callers waiting in `queue`.
    pub fn waiting(&self, queue: &str) -> usize {
        self.waiting.get(queue).map_or(0, |l| l.len())
    }

    /// Picks the agent for a call to `queue` among those `reachable` (a registered phone):
    /// available, in the queue, highest level in the queue's skill, then idle longest. The
    /// agent is set ringing, and the call leaves the queue's waiting line. None when the queue
    /// has no such agent, or when other callers have waited longer than `call`.
    pub fn pick(
        &mut self,
        queue: &str,
        call: &str,
        reachable: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Option<(String, Change)> {
        self.handle_timeout(now);
        if let Some(first) = self.waiting.get(queue).and_then(|l| l.front())
            && first != call
        {
            return None;
        }
        let best = (self.agents.iter())
            .filter(|(id, s)| {
                s.state == AgentState::Available
                    && s.queues.iter().any(|q| q == queue)
                    && reachable(id)
            })
            .min_by_key(|(_, s)| {
                (
                    std::cmp::Reverse(s.skills.get(queue).copied().unwrap_or(0)),
                    s.since,
                )
            })
            .map(|(id, _)| id.clone())?;
        let change = self.set(&best, AgentState::Ringing(call.to_string()), now)?;
        self.leave(call);
        Some((best, change))
    }

    /// Whether `queue` has any agent at all (a queue of the agents file, as opposed to a seat
    /// configured by address).
    pub fn serves(&self, queue: &str) -> bool {
        (self.agents.values()).any(|s| s.queues.iter().any(|q| q == queue))
    }

    /// The agent's phone answered `call`.
    pub fn answered(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        let ringing = matches!(&self.agents.get(agent)?.state, AgentState::Ringing(c) if c == call);
        ringing
            .then(|| self.set(agent, AgentState::OnCall(call.into()), now))
            .flatten()
    }

    /// The agent's phone did not answer `call` (busy, refused, rang out): not ready.
    pub fn not_answered(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        let ringing = matches!(&self.agents.get(agent)?.state, AgentState::Ringing(c) if c == call);
        ringing
            .then(|| self.set(agent, AgentState::Break, now))
            .flatten()
    }

    /// `call` is over for the agent: wrap-up after talking; available again if the caller
    /// left while it rang.
    pub fn released(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        match &self.agents.get(agent)?.state {
            AgentState::OnCall(c) if c == call => {
                let until = now + self.wrap_up;
                self.set(agent, AgentState::WrapUp(until), now)
            }
            AgentState::Ringing(c) if c == call => self.set(agent, AgentState::Available, now),
            _ => None,
        }
    }

    /// Every agent's state and since when.
    pub fn states(&self) -> BTreeMap<String, (&'static str, Instant)> {
        (self.agents.iter())
            .map(|(id, s)| (id.clone(), (s.state.name(), s.since)))
            .collect()
    }
}

/// The router shared by calls and the admin API, with the agents' registered phones.
#[derive(Debug)]
pub struct Acd {
    router: Mutex<Router>,
    contacts: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Acd {
    pub fn new(book: &AgentBook, wrap_up: Duration) -> Self {
        let mut router = Router::new(wrap_up);
        router.set_agents(book, Instant::now());
        Self {
            router: Mutex::new(router),
            contacts: Mutex::new(BTreeMap::new()),
        }
    }

    fn router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn print(changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            println!("voxnav: agent {} is {}", c.agent, c.state);
        }
    }

    /// The agents file changed.
    pub fn set_agents(&self, book: &AgentBook) {
        self.router().set_agents(book, Instant::now());
    }

    /// An agent's own change (API).
    pub fn request(&self, agent: &str, requested: Requested) -> Result<(), StateError> {
        let change = self.router().request(agent, requested, Instant::now())?;
        Self::print(change);
        Ok(())
    }

    /// An agent's phone for a call to `queue`: (agent, the contact to ring), set ringing.
    /// None when no agent of the queue is available with a registered phone.
    pub fn pick(&self, queue: &str, call: &str) -> Option<(String, String)> {
        let contacts = self
            .contacts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (agent, change) =
            (self.router()).pick(queue, call, |a| contacts.contains_key(a), Instant::now())?;
        Self::print([change]);
        let contact = contacts.get(&agent)?.first()?.clone();
        Some((agent, contact))
    }

    pub fn serves(&self, queue: &str) -> bool {
        self.router().serves(queue)
    }

    /// `call` waits for an agent of `queue`.
    pub fn wait(&self, queue: &str, call: &str) {
        self.router().wait(queue, call);
    }

    /// `call` no longer waits.
    pub fn leave(&self, call: &str) {
        self.router().leave(call);
    }

    pub fn answered(&self, agent: &str, call: &str) {
        Self::print(self.router().answered(agent, call, Instant::now()));
    }

    pub fn not_answered(&self, agent: &str, call: &str) {
        Self::print(self.router().not_answered(agent, call, Instant::now()));
    }

    pub fn released(&self, agent: &str, call: &str) {
        Self::print(self.router().released(agent, call, Instant::now()));
    }

    /// Every agent's state and for how long (seconds), wrap-ups that are over ended first.
    pub fn states(&self) -> BTreeMap<String, (&'static str, u64)> {
        let now = Instant::now();
        let mut router = self.router();
        Self::print(router.handle_timeout(now));
        (router.states().into_iter())
            .map(|(id, (state, since))| {
                (id, (state, now.saturating_duration_since(since).as_secs()))
            })
            .collect()
    }
}

impl Observer for Acd {
    fn observe(&self, report: &Report) {
        if let Report::AgentContacts { agent, contacts } = report {
            let mut known = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
            if contacts.is_empty() {
                known.remove(agent);
            } else {
                known.insert(agent.clone(), contacts.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> AgentBook {
        let text = |id: &str, queues: &str, skills: &str| {
            format!(
                "  {id}:\n    queues: [{queues}]\n    skills: {{ {skills} }}\n{}",
                crate::agents::hash_lines(id, "voxnav", "pw")
            )
        };
        let source = format!(
            "agents:\n{}{}{}",
            text("ann", "billing, general", "billing: 2"),
            text("ben", "billing", "billing: 4"),
            text("cat", "general", "general: 1"),
        );
        crate::agents::load_str("agents.yaml", &source).unwrap()
    }

    #[test]
    fn the_best_skilled_then_longest_idle_available_agent_with_a_phone_is_picked() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        // Everyone starts logged out: nobody to ring.
        assert_eq!(r.pick("billing", "c1", all, t0), None);
        r.request("ann", Requested::Available, at(1)).unwrap();
        r.request("ben", Requested::Available, at(2)).unwrap();
        r.request("cat", Requested::Available, at(3)).unwrap();
        // Ben has the higher billing level, although Ann waited longer.
        let (agent, change) = r.pick("billing", "c1", all, at(4)).unwrap();
        assert_eq!((agent.as_str(), change.state), ("ben", "ringing"));
        // Cat has level 1 in general, Ann none: Cat first.
        assert_eq!(r.pick("general", "c2", all, at(4)).unwrap().0, "cat");
        // Only agents with a registered phone.
        assert_eq!(r.pick("general", "c3", |a| a != "ann", at(4)), None);
        // Ringing and on a call: the agent cannot change state; the call's end starts
        // wrap-up, which ends by itself.
        assert!(matches!(
            r.request("ben", Requested::Break, at(5)),
            Err(StateError::Busy(_, "ringing"))
        ));
        assert_eq!(r.answered("ben", "c1", at(5)).unwrap().state, "on_call");
        assert_eq!(r.released("ben", "c1", at(30)).unwrap().state, "wrap_up");
        assert_eq!(r.pick("billing", "c4", all, at(35)).unwrap().0, "ann");
        assert!(
            r.released("ann", "c4", at(36)).is_some(),
            "the caller left while it rang"
        );
        assert_eq!(r.states()["ann"].0, "available");
        let ended = r.handle_timeout(at(40));
        assert_eq!(
            ended,
            vec![Change {
                agent: "ben".into(),
                state: "available"
            }]
        );
        // Cat lets it ring out: on a break, not offered again until she says so.
        assert_eq!(r.not_answered("cat", "c2", at(41)).unwrap().state, "break");
        assert_eq!(r.pick("general", "c5", all, at(42)).unwrap().0, "ann");
        assert!(matches!(
            r.request("nobody", Requested::Available, at(43)),
            Err(StateError::UnknownAgent(_))
        ));
        assert!(r.serves("general") && !r.serves("sales"));
    }

    #[test]
    fn waiting_callers_are_served_in_the_order_they_came() {
        let t0 = Instant::now();
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        for call in ["w1", "w2", "w3"] {
            assert!(r.pick("billing", call, all, t0).is_none(), "nobody is free");
            r.wait("billing", call);
        }
        assert_eq!(r.waiting("billing"), 3);
        r.request("ann", Requested::Available, t0).unwrap();
        // The third caller asks first, but the first caller is served first.
        assert!(r.pick("billing", "w3", all, t0).is_none());
        assert_eq!(r.pick("billing", "w1", all, t0).unwrap().0, "ann");
        assert_eq!(r.waiting("billing"), 2);
        // The second hangs up: the third is next.
        r.leave("w2");
        r.request("ben", Requested::Available, t0).unwrap();
        assert_eq!(r.pick("billing", "w3", all, t0).unwrap().0, "ben");
        assert_eq!(r.waiting("billing"), 0);
    }
}
