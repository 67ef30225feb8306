//! The agent desktop (issue 15): `/agent`, one page served by voxnav (no build step, no
//! external assets), where an agent of the agents file logs in with their password, sets
//! their state, sees a call pop up as their phone rings (the caller's number, the queue, the
//! wait, the reason the bot gave, the intent and slots, the bot's transcript), follows agent
//! assist while they talk (what the caller says, and the knowledge entry that answers it),
//! and wraps the call up with a code and notes that go into the call record.
//!
//! The agent talks in the browser (`net::webphone`: WebRTC, G.711, offered by the page at
//! login with `POST /api/desk/phone`; answer and hang up on the desk) or on their registered
//! softphone; a connected browser phone is the one rung.
//!
//! Its API (`/api/desk`, JSON) is apart from the admin API: an agent's session token, from
//! `POST /api/desk/login`, opens only their own desk. A wrong password and an unknown agent
//! get the same 401; after `MAX_FAILURES` failures for one agent id within `FAILURE_WINDOW`,
//! logins for it answer 429 until the window passes (no password guessing at line speed).
//!
//! The page long-polls: `GET /api/desk?wait=FINGERPRINT` answers as soon as the view differs
//! from the one that carried that fingerprint (the clock fields aside), or after `LONG_POLL`
//! with the same view. A call pops and an assist suggestion shows when it happens, not at the
//! next tick of a timer (a 500 ms poll added 250 ms to assist on average). Every report wakes
//! the waiting requests; what no report announces (the browser phone's status) is checked
//! every `RECHECK`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::bearer_token;
use super::live::{LiveView, now_ms};
use crate::agents::AgentBook;
use crate::net::webphone::{MAX_OFFER, WebPhoneError, WebPhones};
use crate::report::{Observer, Report, Reporter};
use crate::routing::{Acd, Requested};
use crate::sip::digest::{Algorithm, ha1};

/// The page.
const PAGE: &str = include_str!("desk.html");
/// A desk session lasts a working day.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins for one agent id within `FAILURE_WINDOW` before logins for it are refused.
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// At most this many agent ids are tracked for failures (ids made up by a flood included),
/// each at most `MAX_AGENT_ID` bytes: a longer id is no agent's and is refused untracked.
const FAILURES_KEPT: usize = 10_000;
const MAX_AGENT_ID: usize = 64;
/// The wrap-up codes the page offers (a contact centre's dispositions); the API takes any
/// short code of letters, digits, `_` and `-`.
pub const WRAP_UP_CODES: [&str; 5] = [
    "resolved",
    "follow_up",
    "escalated",
    "wrong_number",
    "other",
];
const MAX_CODE: usize = 40;
const MAX_NOTES: usize = 2000;
/// The longest a `GET /api/desk?wait=` is held open: under the 30 s idle timeouts proxies
/// commonly apply.
const LONG_POLL: Duration = Duration::from_secs(25);
/// How often a held request looks again when no report woke it.
const RECHECK: Duration = Duration::from_millis(250);

/// The desk's sessions and what each agent still has to wrap up.
pub struct Desk {
    book: Arc<Mutex<Option<AgentBook>>>,
    acd: Arc<Acd>,
    live: Arc<LiveView>,
    /// Where wrap-ups go (the call records); set once the reporter exists, as the desk is
    /// one of its observers.
    reporter: std::sync::OnceLock<Reporter>,
    /// Session token -> (agent, expiry).
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    /// Agent id -> (failures, since).
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Agent -> the last call they answered, and whether it is wrapped up.
    last_call: Mutex<HashMap<String, (String, bool)>>,
    /// The agents' browser phones.
    phones: Arc<WebPhones>,
    /// Bumped on every report: wakes the long polls.
    changes: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Equal without telling by its timing where two hashes differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

/// A session token: 32 random bytes from the kernel, hex.
fn new_token() -> Option<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a wrap-up was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapUpError {
    #[error("a wrap-up code is 1 to {MAX_CODE} letters, digits, _ or -")]
    BadCode,
    #[error("notes are at most {MAX_NOTES} characters")]
    NotesTooLong,
    /// Not the last call this agent answered, or wrapped up already.
    #[error("{0} is not a call of yours to wrap up")]
    NotYours(String),
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong password or unknown agent (the same answer for both).
    Refused,
    /// Too many failures for this agent id lately.
    Slowed,
}

impl Desk {
    pub fn new(
        book: Arc<Mutex<Option<AgentBook>>>,
        acd: Arc<Acd>,
        live: Arc<LiveView>,
        phones: Arc<WebPhones>,
    ) -> Self {
        Self {
            phones,
            book,
            acd,
            live,
            reporter: std::sync::OnceLock::new(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            last_call: Mutex::new(HashMap::new()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Reports wrap-ups (`Report::WrapUp`) from now on.
    pub fn report_to(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    /// Checks `password` against the agent's HA1 hashes (the agents file keeps no
    /// password): a session token on success.
    pub fn login(&self, agent: &str, password: &str, now: Instant) -> Result<String, LoginError> {
        if agent.len() > MAX_AGENT_ID {
            return Err(LoginError::Refused);
        }
        {
            let mut failures = lock(&self.failures);
            failures.retain(|_, (_, since)| now.saturating_duration_since(*since) < FAILURE_WINDOW);
            if failures.get(agent).is_some_and(|(n, _)| *n >= MAX_FAILURES) {
                return Err(LoginError::Slowed);
            }
        }
        let ok = lock(&self.book).as_ref().is_some_and(|book| {
            book.agents.get(agent).is_some_and(|a| {
                let check = |algorithm, stored: &Option<String>| {
                    (stored.as_deref())
                        .is_some_and(|h| same(h, &ha1(algorithm, agent, &book.realm, password)))
                };
                check(Algorithm::Sha256, &a.hashes.sha256) || check(Algorithm::Md5, &a.hashes.md5)
            })
        });
        if !ok {
            let mut failures = lock(&self.failures);
            if failures.len() < FAILURES_KEPT || failures.contains_key(agent) {
                failures.entry(agent.to_string()).or_insert((0, now)).0 += 1;
            }
            return Err(LoginError::Refused);
        }
        lock(&self.failures).remove(agent);
        let token = new_token().ok_or(LoginError::Refused)?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, (_, expires)| *expires > now);
        sessions.insert(token.clone(), (agent.to_string(), now + SESSION_LIFETIME));
        Ok(token)
    }

    /// The agent a session token belongs to (None: unknown or expired).
    pub fn agent_of(&self, token: &str, now: Instant) -> Option<String> {
        let sessions = lock(&self.sessions);
        let (agent, expires) = sessions.get(token)?;
        (*expires > now).then(|| agent.clone())
    }

    /// Ends the session; the agent's browser phone closes with their last session.
    pub fn logout(&self, token: &str) {
        let mut sessions = lock(&self.sessions);
        if let Some((agent, _)) = sessions.remove(token)
            && !sessions.values().any(|(a, _)| *a == agent)
        {
            self.phones.close(&agent);
        }
    }

    /// What the agent's desk shows now, with its `"fingerprint"`: a hash of everything but
    /// the clock fields (`now_ms`, `state_s`), which change every second and are not news.
    pub fn view(&self, agent: &str) -> serde_json::Value {
        let mut view = self.view_content(agent);
        view["fingerprint"] = json!(fingerprint(&view));
        view
    }

    fn view_content(&self, agent: &str) -> serde_json::Value {
        let (name, queues) = lock(&self.book)
            .as_ref()
            .and_then(|b| b.agents.get(agent))
            .map(|a| (a.name.clone(), a.queues.clone()))
            .unwrap_or_default();
        let (state, state_s) = (self.acd.states().get(agent).copied()).unwrap_or(("logged_out", 0));
        let call = self.acd.call_of(agent).map(|(call_id, talking, queue)| {
            let live = self.live.get(&call_id).unwrap_or_default();
            json!({
                "call_id": call_id,
                "talking": talking,
                "caller": live.caller,
                "hotline": live.hotline,
                "queue": queue,
                "reason": live.transfer_reason,
                "transfer_ms": live.transfer_ms,
                "intent": live.intent,
                "slots": live.slots,
                "transcript": live.transcript,
                "assist": live.assist,
            })
        });
        let wrap_up = lock(&self.last_call)
            .get(agent)
            .filter(|(_, wrapped)| !wrapped)
            .map(|(call, _)| call.clone());
        json!({
            "agent": agent,
            "name": name,
            "queues": queues,
            "state": state,
            "state_s": state_s,
            "now_ms": now_ms(),
            "call": call,
            "phone": self.phones.status(agent),
            "wrap_up": wrap_up.map(|c| json!({ "call_id": c, "codes": WRAP_UP_CODES })),
        })
    }

    /// The agent's view once it differs from the one with `fingerprint`, or after
    /// `LONG_POLL` (None: the session ended while waiting).
    pub async fn view_changed(&self, token: &str, fingerprint: &str) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        let mut changes = self.changes.subscribe();
        loop {
            // Subscribed before the view is built: a report in between is not missed.
            changes.mark_unchanged();
            let agent = self.agent_of(token, Instant::now())?;
            let view = self.view(&agent);
            if view["fingerprint"] != fingerprint || tokio::time::Instant::now() >= deadline {
                return Some(view);
            }
            let wake = deadline.min(tokio::time::Instant::now() + RECHECK);
            let _ = tokio::time::timeout_at(wake, changes.changed()).await;
        }
    }

    /// The agent's wrap-up of `call`: the code and notes go into the call record, and an
    /// agent in wrap-up is available again.
    pub fn wrap_up(
        &self,
        agent: &str,
        call: &str,
        code: &str,
        notes: &str,
    ) -> Result<(), WrapUpError> {
        let code_ok = !code.is_empty()
            && code.len() <= MAX_CODE
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !code_ok {
            return Err(WrapUpError::BadCode);
        }
        if notes.chars().count() > MAX_NOTES {
            return Err(WrapUpError::NotesTooLong);
        }
        {
            let mut last = lock(&self.last_call);
            match last.get_mut(agent) {
                Some((c, wrapped)) if c == call && !*wrapped => *wrapped = true,
                _ => return Err(WrapUpError::NotYours(call.to_string())),
            }
        }
        if let Some(r) = self.reporter.get() {
            r.report(Report::WrapUp {
                call_id: call.to_string(),
                agent: agent.to_string(),
                code: code.to_string(),
                notes: notes.to_string(),
            });
        }
        if self
            .acd
            .states()
            .get(agent)
            .is_some_and(|(s, _)| *s == "wrap_up")
        {
            let _ = self.acd.request(agent, Requested::Available);
        }
        Ok(())
    }
}

impl Observer for Desk {
    fn observe(&self, report: &Report) {
        if let Report::QueueAnswered { call_id, agent, .. } = report {
            lock(&self.last_call).insert(agent.clone(), (call_id.clone(), false));
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A desk view's fingerprint: SipHash (fixed keys, so stable for the process) of the view
/// without its clock fields, in hex.
fn fingerprint(view: &serde_json::Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut news = view.clone();
    if let Some(m) = news.as_object_mut() {
        m.remove("now_ms");
        m.remove("state_s");
        m.remove("fingerprint");
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    news.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// `GET /api/desk`'s query.
#[derive(Debug, serde::Deserialize)]
struct ViewQuery {
    /// Hold the request until the view's fingerprint differs from this one.
    wait: Option<String>,
}

/// The desktop's routes: the page and `/api/desk`.
pub fn router<S: Clone + Send + Sync + 'static>(desk: Option<Arc<Desk>>) -> Router<S> {
    Router::new()
        .route(
            "/agent",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route("/api/desk/login", post(login))
        .route("/api/desk/logout", post(logout))
        .route("/api/desk", get(view))
        .route("/api/desk/state", post(set_state))
        .route("/api/desk/wrap-up", post(wrap_up))
        .route("/api/desk/phone", post(phone))
        .route("/api/desk/answer", post(answer))
        .route("/api/desk/hangup", post(hang_up))
        .with_state(desk)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A refused request: its status and why (a response once returned).
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// The JSON object of a request body, or the 400 that says what is wrong with it.
fn body_object(body: &str) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refusal(
            StatusCode::BAD_REQUEST,
            "the body is not a JSON object".into(),
        )),
        Err(e) => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )),
    }
}

fn field<'a>(m: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    m.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// The desk and the agent of the request's session, or the answer that refuses it.
fn session(desk: &Option<Arc<Desk>>, headers: &HeaderMap) -> Result<(Arc<Desk>, String), Refusal> {
    let Some(desk) = desk else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "no agents file: no desk".into(),
        ));
    };
    let token = bearer_token(headers);
    match desk.agent_of(token, Instant::now()) {
        Some(agent) => Ok((desk.clone(), agent)),
        None => Err(Refusal(StatusCode::UNAUTHORIZED, "log in first".into())),
    }
}

/// A request body's JSON object.
type Body = serde_json::Map<String, serde_json::Value>;

/// `session`, then the request's JSON object body.
fn session_body(
    desk: &Option<Arc<Desk>>,
    headers: &HeaderMap,
    body: &str,
) -> Result<(Arc<Desk>, String, Body), Refusal> {
    let (desk, agent) = session(desk, headers)?;
    Ok((desk, agent, body_object(body)?))
}

async fn login(State(desk): State<Option<Arc<Desk>>>, body: String) -> Response {
    let Some(desk) = desk else {
        return error(StatusCode::NOT_FOUND, "no agents file: no desk");
    };
    let m = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let agent = field(&m, "agent");
    match desk.login(agent, field(&m, "password"), Instant::now()) {
        Ok(token) => {
            println!("voxnav: agent {agent} logged in to the desk");
            Json(json!({ "token": token, "agent": agent })).into_response()
        }
        Err(LoginError::Refused) => error(StatusCode::UNAUTHORIZED, "wrong agent or password"),
        Err(LoginError::Slowed) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins: try again in a minute",
        ),
    }
}

async fn logout(State(desk): State<Option<Arc<Desk>>>, headers: HeaderMap) -> Response {
    let (desk, _) = match session(&desk, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let token = bearer_token(&headers);
    desk.logout(token);
    StatusCode::NO_CONTENT.into_response()
}

async fn view(
    State(desk): State<Option<Arc<Desk>>>,
    Query(q): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    let (desk, agent) = match session(&desk, &headers) {
        Ok(session) => session,
        Err(r) => return r.into_response(),
    };
    let Some(fingerprint) = q.wait else {
        return Json(desk.view(&agent)).into_response();
    };
    let token = bearer_token(&headers);
    match desk.view_changed(token, &fingerprint).await {
        Some(view) => Json(view).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "the desk session ended"),
    }
}

async fn set_state(
    State(desk): State<Option<Arc<Desk>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (desk, agent, m) = match session_body(&desk, &headers, &body) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(requested) = Requested::parse(field(&m, "state")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "state is one of available, break, logged_out",
        );
    };
    match desk.acd.request(&agent, requested) {
        Ok(()) => Json(desk.view(&agent)).into_response(),
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

async fn wrap_up(
    State(desk): State<Option<Arc<Desk>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (desk, agent, m) = match session_body(&desk, &headers, &body) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let call = field(&m, "call_id");
    match desk.wrap_up(&agent, call, field(&m, "code"), field(&m, "notes")) {
        Ok(()) => {
            println!(
                "voxnav: agent {agent} wrapped up {call}: {}",
                field(&m, "code")
            );
            Json(desk.view(&agent)).into_response()
        }
        Err(e @ WrapUpError::NotYours(_)) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// The browser's WebRTC offer for the agent's phone (`{"sdp": "v=0..."}`): the answer.
async fn phone(
    State(desk): State<Option<Arc<Desk>>>,
    ConnectInfo(browser): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (desk, agent) = match session(&desk, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if body.len() > MAX_OFFER {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "an offer is at most 64 KiB");
    }
    let m = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let offer = field(&m, "sdp");
    if offer.is_empty() {
        return error(StatusCode::BAD_REQUEST, "sdp is the browser's offer");
    }
    match desk.phones.connect(&agent, offer, browser) {
        Ok(answer) => {
            println!("voxnav: agent {agent} offered a browser phone from {browser}");
            Json(json!({ "type": "answer", "sdp": answer })).into_response()
        }
        Err(e @ WebPhoneError::Socket(_)) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// The agent answers the call ringing on their browser phone.
async fn answer(State(desk): State<Option<Arc<Desk>>>, headers: HeaderMap) -> Response {
    phone_control(desk, headers, |phones, agent| phones.answer(agent))
}

/// The agent hangs up (or declines the call that rings) on their browser phone.
async fn hang_up(State(desk): State<Option<Arc<Desk>>>, headers: HeaderMap) -> Response {
    phone_control(desk, headers, |phones, agent| phones.hang_up(agent))
}

fn phone_control(
    desk: Option<Arc<Desk>>,
    headers: HeaderMap,
    order: impl Fn(&WebPhones, &str) -> Result<(), crate::net::webphone::ControlError>,
) -> Response {
    let (desk, agent) = match session(&desk, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match order(&desk.phones, &agent) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::CONFLICT, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk() -> Desk {
        let source = format!(
            "agents:\n  alice:\n    name: Alice\n    queues: [general]\n{}",
            crate::agents::hash_lines("alice", "voxnav", "pw")
        );
        let book = crate::agents::load_str("agents.yaml", &source).unwrap();
        let acd = Arc::new(Acd::new(&book, Duration::from_secs(10)));
        Desk::new(
            Arc::new(Mutex::new(Some(book))),
            acd.clone(),
            Arc::new(LiveView::default()),
            Arc::new(WebPhones::new(acd)),
        )
    }

    #[test]
    fn an_agent_logs_in_with_their_password_and_guessing_is_slowed() {
        let d = desk();
        let t0 = Instant::now();
        let token = d.login("alice", "pw", t0).unwrap();
        assert_eq!(d.agent_of(&token, t0).as_deref(), Some("alice"));
        assert_eq!(d.agent_of("made-up", t0), None);
        assert_eq!(d.agent_of(&token, t0 + SESSION_LIFETIME), None, "expired");
        // Unknown agent and wrong password: the same answer; a huge id is not kept.
        assert_eq!(d.login("mallory", "pw", t0), Err(LoginError::Refused));
        let huge = "m".repeat(100_000);
        assert_eq!(d.login(&huge, "pw", t0), Err(LoginError::Refused));
        assert!(!lock(&d.failures).contains_key(&huge));
        for _ in 0..MAX_FAILURES {
            assert_eq!(d.login("alice", "guess", t0), Err(LoginError::Refused));
        }
        // Even the right password waits out the window.
        assert_eq!(d.login("alice", "pw", t0), Err(LoginError::Slowed));
        assert!(d.login("alice", "pw", t0 + FAILURE_WINDOW).is_ok());
        d.logout(&token);
        assert_eq!(d.agent_of(&token, t0), None);
    }

    #[test]
    fn only_the_agent_who_answered_wraps_a_call_up_once() {
        let d = desk();
        d.observe(&Report::QueueAnswered {
            call_id: "c1".into(),
            queue: "general".into(),
            agent: "alice".into(),
            waited: Duration::from_secs(3),
        });
        assert_eq!(d.view("alice")["wrap_up"]["call_id"], "c1");
        assert!(
            d.wrap_up("alice", "c1", "", "").is_err(),
            "a code is needed"
        );
        assert!(d.wrap_up("alice", "c1", "no spaces", "").is_err());
        assert!(
            d.wrap_up("alice", "c1", "resolved", &"x".repeat(2001))
                .is_err()
        );
        assert!(
            d.wrap_up("alice", "c2", "resolved", "").is_err(),
            "not hers"
        );
        assert!(d.wrap_up("bob", "c1", "resolved", "").is_err(), "not his");
        d.wrap_up("alice", "c1", "resolved", "refund explained")
            .unwrap();
        assert!(d.wrap_up("alice", "c1", "resolved", "").is_err(), "once");
        assert!(d.view("alice")["wrap_up"].is_null());
    }

    #[test]
    fn a_held_view_answers_with_the_change_and_ignores_the_clock() {
        let d = Arc::new(desk());
        let token = d.login("alice", "pw", Instant::now()).unwrap();
        let before = d.view("alice");
        let fp = before["fingerprint"].as_str().unwrap().to_string();
        let mut later = before.clone();
        later["now_ms"] = json!(0);
        later["state_s"] = json!(3600);
        assert_eq!(fingerprint(&later), fp, "the clock is not news");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let held = tokio::spawn({
                let (d, token, fp) = (d.clone(), token.clone(), fp.clone());
                async move { d.view_changed(&token, &fp).await }
            });
            tokio::task::yield_now().await;
            d.observe(&Report::QueueAnswered {
                call_id: "c1".into(),
                queue: "general".into(),
                agent: "alice".into(),
                waited: Duration::from_secs(3),
            });
            let view = held.await.unwrap().expect("still logged in");
            assert_eq!(view["wrap_up"]["call_id"], "c1");
            assert_ne!(view["fingerprint"], fp.as_str());
            // A fingerprint that is not the view's: the view as it is.
            let now = d.view_changed(&token, "stale").await.unwrap();
            assert_eq!(now["fingerprint"], view["fingerprint"]);
            // The session ends while held: no view (the handler answers 401).
            let fp = view["fingerprint"].as_str().unwrap().to_string();
            let held = tokio::spawn({
                let (d, token) = (d.clone(), token.clone());
                async move { d.view_changed(&token, &fp).await }
            });
            tokio::task::yield_now().await;
            d.logout(&token);
            assert_eq!(held.await.unwrap(), None);
        });
    }
}
