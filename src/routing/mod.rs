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
//!   the callers of a queue are served by priority (the dialplan's: an upset caller, then one
//!   the bot failed, then the rest), then in the order they came, each by the best free agent
//!   as above; after the wait, the dialplan's fallback.
//! - A caller whose agent lets it ring out keeps their place in the line: the next free agent
//!   is rung at once.
//! - `position` tells a waiting caller their place and, once the queue has handled calls, an
//!   estimated wait; `queues` gives ops their figures (waiting, longest wait, agents by state,
//!   answered within the service level, abandoned, timed out).
//!
//! Not built yet: overflow to voicemail or a callback.

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

    /// The state an agent's phone asks for by dialling a feature code (docs/agents.md):
    /// `*1` available, `*2` break, `*9` logged out (`dialled` as `identity::dialled_number`
    /// gives it: a URI-escaped `%2A` is a star by then).
    pub fn from_feature_code(dialled: &str) -> Option<Self> {
        match dialled.strip_prefix('*')? {
            "1" => Some(Self::Available),
            "2" => Some(Self::Break),
            "9" => Some(Self::LoggedOut),
            _ => None,
        }
    }

    /// What the agent hears once the change is made.
    pub fn confirmation(self) -> &'static str {
        match self {
            Self::Available => "You are available. Calls will come to you.",
            Self::Break => "You are on a break. No calls will come to you.",
            Self::LoggedOut => "You are logged out. Goodbye.",
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
    /// Calls the agent finished talking on, and their talking time, since the start.
    handled: u64,
    talk: Duration,
}

/// A state change, for the log and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub agent: String,
    pub state: &'static str,
}

/// A caller answered within this wait counts toward the queue's service level (the contact
/// centres' usual "answered within 20 s").
pub const SERVICE_LEVEL: Duration = Duration::from_secs(20);

/// A caller in a queue's line.
#[derive(Debug, Clone)]
struct Waiter {
    call: String,
    /// Higher first.
    priority: u8,
    /// Arrival order within a priority.
    seq: u64,
    /// When the caller entered the queue (kept across ring-outs).
    since: Instant,
    /// An agent's phone rings for this caller: not ahead of anyone meanwhile.
    ringing: bool,
    /// Back in the line after an agent's phone went silent mid-call (already counted as
    /// offered and answered once).
    returned: bool,
}

/// Why a caller left a queue's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// The caller hung up while waiting.
    Abandoned,
    /// Waited the longest allowed (the dialplan's fallback follows).
    TimedOut,
    /// Put through some other way (a seat configured for the queue, another transfer).
    Elsewhere,
}

/// A queue's running totals since the server started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueTotals {
    /// Callers who entered the queue.
    pub offered: u64,
    /// Put through to an agent who answered.
    pub answered: u64,
    /// Answered within `SERVICE_LEVEL` of entering the queue.
    pub answered_in_time: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    /// Answered, then the agent's phone went silent mid-call: the caller went back to the
    /// head of the line.
    pub agent_lost: u64,
    /// Calls whose agent finished talking, and their talking time.
    pub handled: u64,
    pub talk: Duration,
}

/// One queue as ops see it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub name: String,
    pub waiting: usize,
    pub longest_wait: Duration,
    /// Agents of the queue per state name.
    pub agents: BTreeMap<&'static str, usize>,
    pub totals: QueueTotals,
}

/// A waiting caller's place, for the announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// 1: next to be served.
    pub position: usize,
    /// None until the queue has handled a call or while no agent of it is logged in.
    pub estimated_wait: Option<Duration>,
}

/// The agents' states and the choice of an agent, sans-IO.
#[derive(Debug, Default)]
pub struct Router {
    agents: BTreeMap<String, Slot>,
    wrap_up: Duration,
    /// Each queue's waiting callers, in the order they are served.
    waiting: BTreeMap<String, Vec<Waiter>>,
    next_seq: u64,
    totals: BTreeMap<String, QueueTotals>,
    /// The queue of each call an agent answered, until the agent is released.
    talking: BTreeMap<String, String>,
}

impl Router {
    pub fn new(wrap_up: Duration) -> Self {
        Self {
            wrap_up,
            ..Self::default()
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
                handled: 0,
                talk: Duration::ZERO,
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

    /// `call` waits for an agent of `queue`, behind the callers of its priority or higher who
    /// came before it (a caller already in the line keeps their place).
    pub fn wait(&mut self, queue: &str, call: &str, priority: u8, now: Instant) {
        let line = self.waiting.entry(queue.to_string()).or_default();
        if line.iter().any(|w| w.call == call) {
            return;
        }
        self.next_seq += 1;
        line.push(Waiter {
            call: call.to_string(),
            priority,
            seq: self.next_seq,
            since: now,
            ringing: false,
            returned: false,
        });
        line.sort_by_key(|w| (std::cmp::Reverse(w.priority), w.seq));
        self.totals.entry(queue.to_string()).or_default().offered += 1;
    }

    /// `call` no longer waits (for the reason given).
    pub fn leave(&mut self, call: &str, why: Leaving) {
        for (queue, line) in self.waiting.iter_mut() {
            let before = line.len();
            line.retain(|w| w.call != call);
            if line.len() < before {
                let totals = self.totals.entry(queue.clone()).or_default();
                match why {
                    Leaving::Abandoned => totals.abandoned += 1,
                    Leaving::TimedOut => totals.timed_out += 1,
                    Leaving::Elsewhere => {}
                }
            }
        }
        self.waiting.retain(|_, line| !line.is_empty());
    }

    /// Callers waiting in `queue` (not counting those whose agent's phone rings).
    pub fn waiting(&self, queue: &str) -> usize {
        (self.waiting.get(queue)).map_or(0, |l| l.iter().filter(|w| !w.ringing).count())
    }

    /// Picks the agent for a call to `queue` among those `reachable` (a registered phone):
    /// available, in the queue, highest level in the queue's skill, then idle longest. The
    /// agent is set ringing, and the call keeps its place in the line until the agent
    /// answers (so a ring-out does not send it to the back). None when the queue has no such
    /// agent, or when callers ahead of `call` are waiting.
    pub fn pick(
        &mut self,
        queue: &str,
        call: &str,
        priority: u8,
        reachable: impl Fn(&str) -> bool,
        now: Instant,
    ) -> Option<(String, Change)> {
        self.handle_timeout(now);
        let line = self.waiting.get(queue).map(Vec::as_slice).unwrap_or(&[]);
        let ahead = line.iter().take_while(|w| w.call != call);
        let known = line.iter().any(|w| w.call == call);
        // A newcomer goes behind everyone of its priority or higher.
        if ahead
            .filter(|w| !w.ringing)
            .any(|w| known || w.priority >= priority)
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
        self.wait(queue, call, priority, now);
        if let Some(w) =
            (self.waiting.get_mut(queue)).and_then(|l| l.iter_mut().find(|w| w.call == call))
        {
            w.ringing = true;
        }
        Some((best, change))
    }

    /// A waiting caller's place in `queue`'s line and the estimated wait: the calls ahead
    /// (and this one) shared among the agents logged in, each taking the queue's average
    /// handling time (talk and wrap-up) so far.
    pub fn position(&self, queue: &str, call: &str) -> Option<Place> {
        let line = self.waiting.get(queue)?;
        let index = line.iter().position(|w| w.call == call)?;
        let position = 1 + line[..index].iter().filter(|w| !w.ringing).count();
        let staffed = (self.agents.values())
            .filter(|s| s.queues.iter().any(|q| q == queue))
            .filter(|s| !matches!(s.state, AgentState::LoggedOut | AgentState::Break))
            .count() as u32;
        let totals = self.totals.get(queue);
        let estimated_wait = match totals {
            Some(t) if t.handled > 0 && staffed > 0 => {
                let handling = t.talk / t.handled as u32 + self.wrap_up;
                Some(handling * (position as u32).div_ceil(staffed))
            }
            _ => None,
        };
        Some(Place {
            position,
            estimated_wait,
        })
    }

    /// Every queue named in the agents file or with callers or totals: its figures now.
    pub fn queues(&self, now: Instant) -> Vec<QueueFigures> {
        let mut names: std::collections::BTreeSet<&str> = (self.agents.values())
            .flat_map(|s| s.queues.iter().map(String::as_str))
            .collect();
        names.extend(self.waiting.keys().map(String::as_str));
        names.extend(self.totals.keys().map(String::as_str));
        (names.into_iter())
            .map(|name| {
                let line = self.waiting.get(name).map(Vec::as_slice).unwrap_or(&[]);
                let waiting = line.iter().filter(|w| !w.ringing);
                let longest_wait = (waiting.clone())
                    .map(|w| now.saturating_duration_since(w.since))
                    .max()
                    .unwrap_or_default();
                let mut agents = BTreeMap::new();
                for s in self.agents.values() {
                    if s.queues.iter().any(|q| q == name) {
                        *agents.entry(s.state.name()).or_insert(0) += 1;
                    }
                }
                QueueFigures {
                    name: name.to_string(),
                    waiting: waiting.count(),
                    longest_wait,
                    agents,
                    totals: self.totals.get(name).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Whether `queue` has any agent at all (a queue of the agents file, as opposed to a seat
    /// configured by address).
    pub fn serves(&self, queue: &str) -> bool {
        (self.agents.values()).any(|s| s.queues.iter().any(|q| q == queue))
    }

    /// The agent's phone answered `call`: the call leaves its line, counted as answered.
    pub fn answered(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        let ringing = matches!(&self.agents.get(agent)?.state, AgentState::Ringing(c) if c == call);
        if !ringing {
            return None;
        }
        let found = (self.waiting.iter()).find_map(|(queue, line)| {
            let w = line.iter().find(|w| w.call == call)?;
            Some((
                queue.clone(),
                now.saturating_duration_since(w.since),
                w.returned,
            ))
        });
        if let Some((queue, waited, returned)) = found {
            if !returned {
                let totals = self.totals.entry(queue.clone()).or_default();
                totals.answered += 1;
                totals.answered_in_time += u64::from(waited <= SERVICE_LEVEL);
            }
            self.talking.insert(call.to_string(), queue);
            self.leave(call, Leaving::Elsewhere);
        }
        self.set(agent, AgentState::OnCall(call.into()), now)
    }

    /// The agent's phone did not answer `call` (busy, refused, rang out): not ready. The
    /// caller keeps their place in the line for the next agent.
    pub fn not_answered(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        let ringing = matches!(&self.agents.get(agent)?.state, AgentState::Ringing(c) if c == call);
        if !ringing {
            return None;
        }
        self.stop_ringing(call);
        self.set(agent, AgentState::Break, now)
    }

    /// The agent's phone went silent in the middle of `call` (no RTP: the phone or its
    /// network is gone): the agent is not ready, and the caller goes back to the head of
    /// the queue's line, ahead of everyone, keeping the wait they had. False when the agent
    /// was not talking on `call` (nothing changes).
    pub fn lost(&mut self, agent: &str, call: &str, now: Instant) -> (bool, Option<Change>) {
        let on_call = matches!(&self.agents.get(agent).map(|s| &s.state), Some(AgentState::OnCall(c)) if c == call);
        if !on_call {
            return (false, None);
        }
        let change = self.set(agent, AgentState::Break, now);
        let Some(queue) = self.talking.remove(call) else {
            return (false, change);
        };
        self.totals.entry(queue.clone()).or_default().agent_lost += 1;
        let line = self.waiting.entry(queue).or_default();
        line.retain(|w| w.call != call);
        line.insert(
            0,
            Waiter {
                call: call.to_string(),
                priority: u8::MAX,
                seq: 0,
                since: now,
                ringing: false,
                returned: true,
            },
        );
        (true, change)
    }

    fn stop_ringing(&mut self, call: &str) {
        for w in self.waiting.values_mut().flatten() {
            if w.call == call {
                w.ringing = false;
            }
        }
    }

    /// `call` is over for the agent: wrap-up after talking; available again if the caller
    /// left while it rang.
    pub fn released(&mut self, agent: &str, call: &str, now: Instant) -> Option<Change> {
        let slot = self.agents.get_mut(agent)?;
        match &slot.state {
            AgentState::OnCall(c) if c == call => {
                let talked = now.saturating_duration_since(slot.since);
                slot.handled += 1;
                slot.talk += talked;
                if let Some(queue) = self.talking.remove(call) {
                    let totals = self.totals.entry(queue).or_default();
                    totals.handled += 1;
                    totals.talk += talked;
                }
                let until = now + self.wrap_up;
                self.set(agent, AgentState::WrapUp(until), now)
            }
            AgentState::Ringing(c) if c == call => {
                self.stop_ringing(call);
                self.set(agent, AgentState::Available, now)
            }
            _ => None,
        }
    }

    /// The queue a call waits in or was answered from.
    pub fn queue_of(&self, call: &str) -> Option<&str> {
        if let Some(queue) = self.talking.get(call) {
            return Some(queue);
        }
        (self.waiting.iter())
            .find(|(_, line)| line.iter().any(|w| w.call == call))
            .map(|(queue, _)| queue.as_str())
    }

    /// The call an agent's phone rings for or talks on (true: talking).
    pub fn call_of(&self, agent: &str) -> Option<(&str, bool)> {
        match &self.agents.get(agent)?.state {
            AgentState::Ringing(call) => Some((call, false)),
            AgentState::OnCall(call) => Some((call, true)),
            _ => None,
        }
    }

    /// Every agent's calls handled and talking time since the start.
    pub fn agent_totals(&self) -> BTreeMap<String, (u64, Duration)> {
        (self.agents.iter())
            .map(|(id, s)| (id.clone(), (s.handled, s.talk)))
            .collect()
    }

    /// Every agent's state and since when.
    pub fn states(&self) -> BTreeMap<String, (&'static str, Instant)> {
        (self.agents.iter())
            .map(|(id, s)| (id.clone(), (s.state.name(), s.since)))
            .collect()
    }
}

/// The agents' phones: registered SIP contacts, and browser phones on the desk.
#[derive(Debug, Default)]
struct Phones {
    sip: BTreeMap<String, Vec<String>>,
    browser: std::collections::BTreeSet<String>,
}

impl Phones {
    fn has(&self, agent: &str) -> bool {
        self.browser.contains(agent) || self.sip.contains_key(agent)
    }

    /// The phone to ring: the desk's browser phone when it is connected (the agent chose
    /// to talk there), else the first registered contact.
    fn contact(&self, agent: &str) -> Option<String> {
        if self.browser.contains(agent) {
            return Some(format!("{}{agent}", crate::net::webphone::SCHEME));
        }
        self.sip.get(agent)?.first().cloned()
    }
}

/// The router shared by calls and the admin API, with the agents' phones.
#[derive(Debug)]
pub struct Acd {
    router: Mutex<Router>,
    phones: Mutex<Phones>,
    /// Where state changes are reported (the records), once the server's reporter exists:
    /// the reporter observes this ACD too, so it comes after it.
    reporter: std::sync::OnceLock<crate::report::Reporter>,
}

impl Acd {
    pub fn new(book: &AgentBook, wrap_up: Duration) -> Self {
        let mut router = Router::new(wrap_up);
        router.set_agents(book, Instant::now());
        Self {
            router: Mutex::new(router),
            phones: Mutex::new(Phones::default()),
            reporter: std::sync::OnceLock::new(),
        }
    }

    fn router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports state changes (`Report::AgentState`, for the records) from now on.
    pub fn report_to(&self, reporter: crate::report::Reporter) {
        let _ = self.reporter.set(reporter);
    }

    /// Every change is printed and reported.
    fn print(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            println!("voxnav: agent {} is {}", c.agent, c.state);
            if let Some(r) = self.reporter.get() {
                r.report(Report::AgentState {
                    agent: c.agent,
                    state: c.state,
                });
            }
        }
    }

    /// The agents file changed.
    pub fn set_agents(&self, book: &AgentBook) {
        self.router().set_agents(book, Instant::now());
    }

    /// An agent's own change (API).
    pub fn request(&self, agent: &str, requested: Requested) -> Result<(), StateError> {
        let change = self.router().request(agent, requested, Instant::now())?;
        self.print(change);
        Ok(())
    }

    /// An agent's phone for a call to `queue`: (agent, the contact to ring), set ringing.
    /// None when no agent of the queue is available with a registered phone, or callers
    /// ahead of this one wait.
    pub fn pick(&self, queue: &str, call: &str, priority: u8) -> Option<(String, String)> {
        // Held, not copied: every waiting caller asks four times a second, and a copy of 200
        // agents' phones made each decision ten times dearer (`cargo bench --bench acd`).
        // Lock order: phones, then router; the observer takes the phones alone.
        let phones = self.phones.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut router = self.router();
        let over = router.handle_timeout(now); // wrap-ups that are over
        let picked = router.pick(queue, call, priority, |a| phones.has(a), now);
        drop(router);
        let contact = (picked.as_ref()).and_then(|(agent, _)| phones.contact(agent));
        drop(phones);
        self.print(over);
        let (agent, change) = picked?;
        self.print([change]);
        Some((agent, contact?))
    }

    /// `agent`'s browser phone on the desk connected (true) or went away (false).
    pub fn browser_phone(&self, agent: &str, connected: bool) {
        let mut phones = self.phones.lock().unwrap_or_else(|p| p.into_inner());
        if connected {
            phones.browser.insert(agent.to_string());
        } else {
            phones.browser.remove(agent);
        }
    }

    pub fn serves(&self, queue: &str) -> bool {
        self.router().serves(queue)
    }

    /// `call` waits for an agent of `queue`.
    pub fn wait(&self, queue: &str, call: &str, priority: u8) {
        self.router().wait(queue, call, priority, Instant::now());
    }

    /// `call` no longer waits (nothing happens if it did not).
    pub fn leave(&self, call: &str, why: Leaving) {
        self.router().leave(call, why);
    }

    /// A waiting caller's place and estimated wait.
    pub fn position(&self, queue: &str, call: &str) -> Option<Place> {
        self.router().position(queue, call)
    }

    /// Every queue's figures now (wrap-ups that are over ended first).
    pub fn queues(&self) -> Vec<QueueFigures> {
        let now = Instant::now();
        let mut router = self.router();
        self.print(router.handle_timeout(now));
        router.queues(now)
    }

    /// Every agent's calls handled and talking time.
    pub fn agent_totals(&self) -> BTreeMap<String, (u64, Duration)> {
        self.router().agent_totals()
    }

    pub fn answered(&self, agent: &str, call: &str) {
        self.print(self.router().answered(agent, call, Instant::now()));
    }

    pub fn not_answered(&self, agent: &str, call: &str) {
        self.print(self.router().not_answered(agent, call, Instant::now()));
    }

    /// The agent's phone went silent mid-call: true when the caller is back at the head of
    /// the line (see `Router::lost`).
    pub fn lost(&self, agent: &str, call: &str) -> bool {
        let (back, change) = self.router().lost(agent, call, Instant::now());
        self.print(change);
        back
    }

    pub fn released(&self, agent: &str, call: &str) {
        self.print(self.router().released(agent, call, Instant::now()));
    }

    /// The call an agent's phone rings for or talks on (true: talking).
    pub fn call_of(&self, agent: &str) -> Option<(String, bool, Option<String>)> {
        let router = self.router();
        let (call, talking) = router.call_of(agent)?;
        let queue = router.queue_of(call).map(str::to_string);
        Some((call.to_string(), talking, queue))
    }

    /// Every agent's state and for how long (seconds), wrap-ups that are over ended first.
    pub fn states(&self) -> BTreeMap<String, (&'static str, u64)> {
        let now = Instant::now();
        let mut router = self.router();
        self.print(router.handle_timeout(now));
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
            let mut known = self.phones.lock().unwrap_or_else(|p| p.into_inner());
            if contacts.is_empty() {
                known.sip.remove(agent);
            } else {
                known.sip.insert(agent.clone(), contacts.clone());
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
    fn feature_codes_name_the_states_an_agent_may_ask_for() {
        let code = Requested::from_feature_code;
        assert_eq!(code("*1"), Some(Requested::Available));
        assert_eq!(code("*2"), Some(Requested::Break));
        assert_eq!(code("*9"), Some(Requested::LoggedOut));
        for other in ["*3", "*", "1", "*12", "**1", "4001", ""] {
            assert_eq!(code(other), None, "{other}");
        }
    }

    #[test]
    fn the_best_skilled_then_longest_idle_available_agent_with_a_phone_is_picked() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        // Everyone starts logged out: nobody to ring.
        assert_eq!(r.pick("billing", "c1", 0, all, t0), None);
        r.request("ann", Requested::Available, at(1)).unwrap();
        r.request("ben", Requested::Available, at(2)).unwrap();
        r.request("cat", Requested::Available, at(3)).unwrap();
        // Ben has the higher billing level, although Ann waited longer.
        let (agent, change) = r.pick("billing", "c1", 0, all, at(4)).unwrap();
        assert_eq!((agent.as_str(), change.state), ("ben", "ringing"));
        // Cat has level 1 in general, Ann none: Cat first.
        assert_eq!(r.pick("general", "c2", 0, all, at(4)).unwrap().0, "cat");
        // Only agents with a registered phone.
        assert_eq!(r.pick("general", "c3", 0, |a| a != "ann", at(4)), None);
        // Ringing and on a call: the agent cannot change state; the call's end starts
        // wrap-up, which ends by itself.
        assert!(matches!(
            r.request("ben", Requested::Break, at(5)),
            Err(StateError::Busy(_, "ringing"))
        ));
        assert_eq!(r.answered("ben", "c1", at(5)).unwrap().state, "on_call");
        assert_eq!(r.released("ben", "c1", at(30)).unwrap().state, "wrap_up");
        assert_eq!(r.pick("billing", "c4", 0, all, at(35)).unwrap().0, "ann");
        assert!(
            r.released("ann", "c4", at(36)).is_some(),
            "the caller left while it rang"
        );
        r.leave("c4", Leaving::Abandoned);
        assert_eq!(r.states()["ann"].0, "available");
        let ended = r.handle_timeout(at(40));
        assert_eq!(
            ended,
            vec![Change {
                agent: "ben".into(),
                state: "available"
            }]
        );
        // Cat lets it ring out: on a break, not offered again until she says so. Her caller
        // keeps its place: served before a newcomer.
        assert_eq!(r.not_answered("cat", "c2", at(41)).unwrap().state, "break");
        assert_eq!(r.pick("general", "c5", 0, all, at(42)), None);
        assert_eq!(r.pick("general", "c2", 0, all, at(42)).unwrap().0, "ann");
        assert!(matches!(
            r.request("nobody", Requested::Available, at(43)),
            Err(StateError::UnknownAgent(_))
        ));
        assert!(r.serves("general") && !r.serves("sales"));
    }

    #[test]
    fn waiting_callers_are_served_by_priority_then_in_the_order_they_came() {
        let t0 = Instant::now();
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        for call in ["w1", "w2", "w3"] {
            assert!(
                r.pick("billing", call, 0, all, t0).is_none(),
                "nobody is free"
            );
            r.wait("billing", call, 0, t0);
        }
        assert_eq!(r.waiting("billing"), 3);
        r.request("ann", Requested::Available, t0).unwrap();
        // The third caller asks first, but the first caller is served first.
        assert!(r.pick("billing", "w3", 0, all, t0).is_none());
        assert_eq!(r.pick("billing", "w1", 0, all, t0).unwrap().0, "ann");
        assert_eq!(r.waiting("billing"), 2);
        // The second hangs up: the third is next.
        r.leave("w2", Leaving::Abandoned);
        r.request("ben", Requested::Available, t0).unwrap();
        assert_eq!(r.pick("billing", "w3", 0, all, t0).unwrap().0, "ben");
        assert_eq!(r.waiting("billing"), 0);

        // An upset caller (priority 2) goes ahead of those who came before; among equals,
        // first come first.
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        r.wait("billing", "calm", 0, t0);
        r.wait("billing", "failed", 1, t0);
        r.wait("billing", "upset", 2, t0);
        r.wait("billing", "upset-later", 2, t0);
        let place = |r: &Router, c: &str| r.position("billing", c).unwrap().position;
        assert_eq!(
            ["upset", "upset-later", "failed", "calm"].map(|c| place(&r, c)),
            [1, 2, 3, 4]
        );
        r.request("ann", Requested::Available, t0).unwrap();
        assert!(r.pick("billing", "calm", 0, all, t0).is_none());
        // A newcomer of a higher priority than everyone waiting is not held up.
        assert_eq!(r.pick("billing", "angriest", 3, all, t0).unwrap().0, "ann");
        // A newcomer of the priority of callers waiting goes behind them.
        r.request("ben", Requested::Available, t0).unwrap();
        assert!(r.pick("billing", "upset2", 2, all, t0).is_none());
        assert_eq!(r.pick("billing", "upset", 2, all, t0).unwrap().0, "ben");
    }

    #[test]
    fn a_rung_out_caller_keeps_its_place_and_the_next_agent_is_rung() {
        let t0 = Instant::now();
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        r.request("ann", Requested::Available, t0).unwrap();
        r.request("ben", Requested::Available, t0).unwrap();
        r.wait("billing", "first", 0, t0);
        r.wait("billing", "second", 0, t0);
        assert_eq!(r.pick("billing", "first", 0, all, t0).unwrap().0, "ben");
        // While Ben's phone rings for the first caller, the second is next for Ann.
        assert_eq!(r.position("billing", "second").unwrap().position, 1);
        assert_eq!(r.waiting("billing"), 1);
        assert_eq!(r.not_answered("ben", "first", t0).unwrap().state, "break");
        // Ben rang out: the first caller is first again, and Ann (the next) gets it.
        assert!(r.pick("billing", "second", 0, all, t0).is_none());
        assert_eq!(r.pick("billing", "first", 0, all, t0).unwrap().0, "ann");
        assert_eq!(r.states()["ben"].0, "break", "not offered again");
    }

    #[test]
    fn a_caller_whose_agent_went_silent_goes_back_to_the_head_of_the_line() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        r.request("ben", Requested::Available, t0).unwrap();
        r.wait("billing", "first", 0, t0);
        assert_eq!(r.pick("billing", "first", 0, all, t0).unwrap().0, "ben");
        r.answered("ben", "first", at(1)).unwrap();
        // Meanwhile an upset caller waits; nobody is free.
        r.wait("billing", "upset", 9, at(2));
        // Not on that call: nothing changes.
        assert_eq!(r.lost("ann", "first", at(3)), (false, None));
        assert_eq!(r.lost("ben", "other", at(3)), (false, None));
        let (back, change) = r.lost("ben", "first", at(3));
        assert!(back);
        assert_eq!(
            change.unwrap().state,
            "break",
            "a silent phone is not offered again"
        );
        // Back at the head of the line, ahead of any priority.
        assert_eq!(r.position("billing", "first").unwrap().position, 1);
        assert_eq!(r.position("billing", "upset").unwrap().position, 2);
        r.request("ann", Requested::Available, at(4)).unwrap();
        assert!(r.pick("billing", "upset", 9, all, at(4)).is_none());
        assert_eq!(r.pick("billing", "first", 0, all, at(4)).unwrap().0, "ann");
        r.answered("ann", "first", at(5)).unwrap();
        let t = &r
            .queues(at(5))
            .into_iter()
            .find(|q| q.name == "billing")
            .unwrap()
            .totals;
        // Offered and answered once each, however often an agent was lost.
        assert_eq!((t.offered, t.answered, t.agent_lost), (2, 1, 1));
        assert_eq!(t.handled, 0, "the lost agent's talk is not a handled call");
    }

    #[test]
    fn the_queue_figures_count_service_level_abandons_and_estimate_the_wait() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Router::new(Duration::from_secs(10));
        r.set_agents(&book(), t0);
        let all = |_: &str| true;
        for (i, call) in ["a", "b", "c", "d"].iter().enumerate() {
            r.wait("billing", call, 0, at(i as u64));
        }
        // No history yet: a place but no estimate.
        assert_eq!(
            r.position("billing", "b"),
            Some(Place {
                position: 2,
                estimated_wait: None
            })
        );
        r.request("ann", Requested::Available, at(5)).unwrap();
        r.pick("billing", "a", 0, all, at(5)).unwrap();
        r.answered("ann", "a", at(6)).unwrap(); // waited 6 s: in time
        r.released("ann", "a", at(96)).unwrap(); // talked 90 s, then 10 s of wrap-up
        r.handle_timeout(at(106));
        r.pick("billing", "b", 0, all, at(106)).unwrap();
        r.answered("ann", "b", at(107)).unwrap(); // waited 106 s: late
        r.leave("c", Leaving::Abandoned);
        // One agent staffed, 100 s per call: the caller next in line waits about 100 s.
        assert_eq!(
            r.position("billing", "d"),
            Some(Place {
                position: 1,
                estimated_wait: Some(Duration::from_secs(100))
            })
        );
        r.leave("d", Leaving::TimedOut);
        r.wait("billing", "e", 0, at(110));
        let figures = r.queues(at(130));
        let billing = figures.iter().find(|q| q.name == "billing").unwrap();
        assert_eq!(billing.waiting, 1);
        assert_eq!(billing.longest_wait, Duration::from_secs(20));
        assert_eq!(billing.agents.get("on_call"), Some(&1));
        assert_eq!(billing.agents.get("logged_out"), Some(&1));
        assert_eq!(
            billing.totals,
            QueueTotals {
                offered: 5,
                answered: 2,
                answered_in_time: 1,
                abandoned: 1,
                timed_out: 1,
                agent_lost: 0,
                handled: 1,
                talk: Duration::from_secs(90),
            }
        );
        assert!(
            figures
                .iter()
                .any(|q| q.name == "general" && q.waiting == 0)
        );
    }
}
