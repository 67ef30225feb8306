//! The admin HTTP API (axum) beside the SIP server. `/healthz`, `/readyz` and `/metrics`
//! (Prometheus) are open, as monitoring expects, and so are the dashboard page and the OpenAPI
//! description (neither holds data: the page asks for the token and calls the API). Everything
//! else under `/api/` needs the admin token (`Authorization: Bearer TOKEN`); without a
//! configured token `/api/` is refused entirely rather than left open.
//!
//! The routes and their JSON are described in `openapi.json` (served at `/api/openapi.json`):
//! calls in progress, recorded calls with their turns, statistics over a time range, the
//! not-understood utterances, and the hotline's version, validation, reload and upload.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::db::{Database, Records};
use super::stats::{self, Range};
use crate::dialplan::error::DialplanError;
use crate::dialplan::registry::HotlineRegistry;

/// Admin API settings.
#[derive(Clone, Default)]
pub struct AdminConfig {
    /// None: `/api/` answers 403 to everyone.
    pub token: Option<String>,
    /// The call records database (None: `--no-records`; the record routes answer 404).
    pub records: Option<Database>,
    /// The hotlines being served (none: a server without a dialplan).
    pub hotlines: Vec<AdminHotline>,
    /// Set once the server takes calls (the hotline's fixed prompts are synthesised);
    /// `/readyz` answers 503 before.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled to drain the server (`POST /api/drain`, or SIGUSR1): `/readyz` then answers
    /// 503.
    pub drain: tokio_util::sync::CancellationToken,
    /// The server's metrics (`/metrics`).
    pub metrics: Arc<super::metrics::Metrics>,
    /// The server's calls in progress.
    pub live: Arc<super::live::LiveView>,
    /// The variables calls start with (the backend addresses): the trainers' test gate runs
    /// the hotline's scripted conversations with them.
    pub vars: std::collections::BTreeMap<String, String>,
    /// The client the gate's conversations reach backends with (as calls do).
    pub backends: Arc<crate::net::backend::Backends>,
    /// This server's name (`server_name`), on its live calls and records.
    pub server_name: String,
    /// The other nodes' admin API base URLs (`cluster.peers`): `/api/cluster/calls` shows
    /// their calls in progress beside this server's. They take the same token.
    pub peers: Vec<String>,
    /// The agents file as last loaded (None: no agents file).
    pub agents: Arc<std::sync::Mutex<Option<crate::agents::AgentBook>>>,
    /// The agents' states (with an agents file).
    pub acd: Option<Arc<crate::routing::Acd>>,
    /// The agent desktop (`/agent`, with an agents file).
    pub desk: Option<Arc<super::desk::Desk>>,
}

/// A hotline as the admin API sees it.
#[derive(Clone)]
pub struct AdminHotline {
    pub registry: Arc<HotlineRegistry>,
    /// The dialled numbers that reach it (`default` for numbers no hotline lists).
    pub numbers: Vec<String>,
}

impl AdminHotline {
    /// A hotline every number reaches (a server with one dialplan).
    pub fn only(registry: Arc<HotlineRegistry>) -> Vec<Self> {
        vec![Self {
            registry,
            numbers: vec!["default".into()],
        }]
    }
}

/// The dashboard: one page, no build step, no external assets.
const DASHBOARD: &str = include_str!("dashboard.html");
/// The API description (OpenAPI 3.1).
const OPENAPI: &str = include_str!("openapi.json");

/// The admin routes.
pub fn router(config: AdminConfig) -> Router {
    let api = Router::new()
        .route("/api/calls", get(live_calls))
        .route("/api/agents", get(agents))
        .route("/api/agents/{id}/state", post(agent_state))
        .route("/api/queues", get(queues))
        .route("/api/cluster/calls", get(cluster_calls))
        .route("/api/calls/{id}", get(one_call))
        .route("/api/records/calls", get(recorded_calls))
        .route("/api/stats", get(statistics))
        .route("/api/stats/not-understood", get(not_understood))
        .route("/api/drain", post(drain))
        .route("/api/registration", get(registration))
        .route("/api/hotlines", get(hotlines))
        .route("/api/hotlines/{name}", get(hotline).put(upload_hotline))
        .route("/api/hotlines/{name}/validate", post(validate_hotline))
        .route("/api/hotlines/{name}/reload", post(reload_hotline))
        .route(
            "/api/hotlines/{name}/review",
            get(review_queue).post(review_phrasing),
        )
        .route("/api/hotlines/{name}/changes", get(changes))
        .route(
            "/api/hotlines/{name}/changes/{id}/revert",
            post(revert_change),
        )
        .layer(middleware::from_fn_with_state(
            config.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route(
            "/dashboard",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    DASHBOARD,
                )
            }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(api)
        .merge(super::desk::router(config.desk.clone()))
        .with_state(config)
}

/// Serves the admin API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, config: AdminConfig) -> std::io::Result<()> {
    // The peer's address: the desk's browser phone answers on the interface that reaches it.
    let app = router(config).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).await
}

async fn require_token(
    State(config): State<AdminConfig>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = config.token.as_deref() else {
        return (
            StatusCode::FORBIDDEN,
            "the admin API is disabled: start voxnav serve with --admin-token or VOXNAV_ADMIN_TOKEN\n",
        )
            .into_response();
    };
    let given = super::bearer_token(request.headers());
    // Compared without early exit, so the time taken does not reveal the matching prefix.
    // (The token is never empty: a missing header cannot match.)
    let matches = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !matches {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong admin token\n",
        )
            .into_response();
    }
    next.run(request).await
}

async fn metrics(State(config): State<AdminConfig>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        config.metrics.render(),
    )
}

/// `?hotline=`: one hotline's calls.
#[derive(Debug, Deserialize)]
struct HotlineQuery {
    hotline: Option<String>,
}

async fn live_calls(
    State(config): State<AdminConfig>,
    Query(q): Query<HotlineQuery>,
) -> impl IntoResponse {
    let mut calls = config.live.all();
    if let Some(hotline) = &q.hotline {
        calls.retain(|c| &c.hotline == hotline);
    }
    Json(json!({ "server": config.server_name, "calls": calls }))
}

/// The agents of the agents file with the contacts their phones have registered.
async fn agents(State(config): State<AdminConfig>) -> impl IntoResponse {
    let book = config
        .agents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let contacts = config.live.agent_contacts();
    let states = config.acd.as_ref().map(|a| a.states()).unwrap_or_default();
    let list: Vec<serde_json::Value> = (book.iter().flat_map(|b| b.agents.values()))
        .map(|a| {
            let mut v = json!(a);
            v["contacts"] = json!(contacts.get(&a.id).cloned().unwrap_or_default());
            let (state, for_s) = states.get(&a.id).copied().unwrap_or(("logged_out", 0));
            v["state"] = json!(state);
            v["state_for_s"] = json!(for_s);
            v
        })
        .collect();
    Json(json!({ "configured": book.is_some(), "agents": list }))
}

/// The queues now and their totals since the start.
async fn queues(State(config): State<AdminConfig>) -> impl IntoResponse {
    let figures = config.acd.as_ref().map(|a| a.queues()).unwrap_or_default();
    let list: Vec<serde_json::Value> = (figures.iter())
        .map(|f| {
            let t = &f.totals;
            let ratio = |n: u64, of: u64| (of > 0).then(|| n as f64 / of as f64);
            json!({
                "name": f.name,
                "waiting": f.waiting,
                "longest_wait_s": f.longest_wait.as_secs_f64(),
                "agents": f.agents,
                "offered": t.offered,
                "answered": t.answered,
                "answered_in_time": t.answered_in_time,
                "service_level": ratio(t.answered_in_time, t.answered),
                "abandoned": t.abandoned,
                "timed_out": t.timed_out,
                "agent_lost": t.agent_lost,
                "handled": t.handled,
                "average_talk_s": (t.handled > 0).then(|| t.talk.as_secs_f64() / t.handled as f64),
            })
        })
        .collect();
    Json(json!({
        "configured": config.acd.is_some(),
        "service_level_s": crate::routing::SERVICE_LEVEL.as_secs(),
        "queues": list,
    }))
}

/// What an agent asks (`{"state": "available" | "break" | "logged_out"}`).
#[derive(Debug, Deserialize)]
struct StateRequest {
    state: String,
}

/// An agent changes their state: 404 for an unknown agent, 409 while ringing or on a call
/// (the state follows the call), 400 for another state name.
async fn agent_state(
    State(config): State<AdminConfig>,
    Path(id): Path<String>,
    Json(request): Json<StateRequest>,
) -> ApiResult {
    use crate::routing::{Requested, StateError};
    let Some(acd) = &config.acd else {
        return Err(error(StatusCode::NOT_FOUND, "no agents file"));
    };
    let Some(requested) = Requested::parse(&request.state) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "state must be available, break or logged_out",
        ));
    };
    match acd.request(&id, requested) {
        Ok(()) => Ok(Json(json!({ "agent": id, "state": request.state })).into_response()),
        Err(e @ StateError::UnknownAgent(_)) => Err(error(StatusCode::NOT_FOUND, e)),
        Err(e @ StateError::Busy(..)) => Err(error(StatusCode::CONFLICT, e)),
    }
}

/// How long a peer's live calls may take to come (a node that is down must not stall the
/// dashboard).
const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The calls in progress on this server and on each peer (`cluster.peers`), each call with
/// the server it is on, and one entry per server: its name and call count, or why it could
/// not be read. Each node keeps its own calls in progress (their audio is there); records
/// are shared through PostgreSQL instead.
async fn cluster_calls(
    State(config): State<AdminConfig>,
    Query(q): Query<HotlineQuery>,
) -> ApiResult {
    let query = q
        .hotline
        .as_deref()
        .map(|h| format!("?hotline={}", crate::net::http::encode_component(h)))
        .unwrap_or_default();
    let token = config.token.clone().unwrap_or_default();
    let asks = config.peers.iter().cloned().map(|peer| {
        let (query, token) = (query.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let url = format!("{}/api/calls{query}", peer.trim_end_matches('/'));
            let answer = crate::net::http::fetch_with_headers(
                "GET",
                &url,
                &[("Authorization", &format!("Bearer {token}"))],
                None,
                PEER_TIMEOUT,
            );
            let read = match answer {
                Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                    .map_err(|e| format!("not JSON: {e}")),
                Ok((status, _)) => Err(format!("answered {status}")),
                Err(e) => Err(e),
            };
            (peer, read)
        })
    });
    let mut own = config.live.all();
    if let Some(hotline) = &q.hotline {
        own.retain(|c| &c.hotline == hotline);
    }
    let mut servers = vec![json!({
        "server": config.server_name, "url": null, "calls": own.len()
    })];
    let mut calls: Vec<serde_json::Value> = (own.iter())
        .map(|c| {
            let mut v = json!(c);
            v["server"] = json!(config.server_name);
            v
        })
        .collect();
    for ask in asks {
        let (peer, read) = ask
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        match read {
            Ok(answer) => {
                let name = answer["server"].as_str().unwrap_or(&peer).to_string();
                let theirs = answer["calls"].as_array().cloned().unwrap_or_default();
                servers.push(json!({ "server": name, "url": peer, "calls": theirs.len() }));
                calls.extend(theirs.into_iter().map(|mut c| {
                    c["server"] = json!(name);
                    c
                }));
            }
            Err(e) => servers.push(json!({ "server": null, "url": peer, "error": e })),
        }
    }
    Ok(Json(json!({ "servers": servers, "calls": calls })).into_response())
}

/// An API error: its status and a JSON `{"error": ...}` body.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiError {
    ApiError(status, message.to_string())
}

type ApiResult = Result<Response, ApiError>;

/// voxnav's registration to its registrar (`sip.register`), or 404 when none is configured.
async fn registration(State(config): State<AdminConfig>) -> ApiResult {
    match config.live.registration() {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "no registration: sip.register is not configured (or has not started)",
        )),
    }
}

/// Drains the server for an upgrade: new calls get 503 (and OPTIONS probes, so a load
/// balancer stops sending), calls in progress go on, and the server exits after the last.
async fn drain(State(config): State<AdminConfig>) -> Response {
    config.drain.cancel();
    tracing::warn!("draining, asked through the admin API");
    Json(json!({ "draining": true })).into_response()
}

/// Readiness: the server takes calls, the hotline is loaded and the records database answers.
async fn ready(State(config): State<AdminConfig>) -> ApiResult {
    if config.drain.is_cancelled() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: no new calls; the server exits when the last one ends",
        ));
    }
    if !config.ready.load(std::sync::atomic::Ordering::Acquire) {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the hotline's prompts are being synthesised",
        ));
    }
    let records = match config.records.clone() {
        None => "off".to_string(),
        Some(database) => {
            with_records(Some(database), |db| {
                // A cheap probe, not a count over the whole table.
                db.row(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM calls LIMIT 1) AS probe",
                    &[],
                )
                .map_err(stats::StatsError::from)
            })
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e.1))?;
            "ok".to_string()
        }
    };
    let hotlines: Vec<_> = (config.hotlines.iter())
        .map(|h| {
            let s = h.registry.status();
            json!({ "name": s.name, "version": s.version })
        })
        .collect();
    Ok(Json(json!({ "ready": true, "hotlines": hotlines, "records": records })).into_response())
}

/// Runs a records query on a blocking thread with its own connection.
async fn with_records<T: Send + 'static>(
    database: Option<Database>,
    query: impl FnOnce(&mut Records) -> Result<T, stats::StatsError> + Send + 'static,
) -> Result<T, ApiError> {
    with_records_of(database, None, query).await
}

/// `with_records` on one hotline's calls only (`stats::only_hotline`), or all with None.
async fn with_records_of<T: Send + 'static>(
    database: Option<Database>,
    hotline: Option<String>,
    query: impl FnOnce(&mut Records) -> Result<T, stats::StatsError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(database) = database else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "call records are off (voxnav serve --no-records)",
        ));
    };
    tokio::task::spawn_blocking(move || {
        let mut db = database
            .connect()
            .map_err(|e| format!("call records {database}: {e}"))?;
        if let Some(hotline) = &hotline {
            stats::only_hotline(&mut db, hotline).map_err(|e| e.to_string())?;
        }
        query(&mut db).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// A call in progress (with its live transcript), else the recorded call with its turns.
async fn one_call(State(config): State<AdminConfig>, Path(id): Path<String>) -> ApiResult {
    if let Some(call) = config.live.get(&id) {
        return Ok(Json(json!({ "live": true, "call": call })).into_response());
    }
    let wanted = id.clone();
    match with_records(config.records, move |db| stats::call(db, &wanted)).await? {
        Some(call) => Ok(Json(json!({ "live": false, "call": call })).into_response()),
        None => Err(error(StatusCode::NOT_FOUND, format!("no call {id}"))),
    }
}

/// The `?from=&to=` of report routes (Unix ms; default: the last 24 hours).
#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Option<u64>,
    to: Option<u64>,
    bucket_ms: Option<u64>,
    limit: Option<u32>,
    outcome: Option<String>,
    /// One hotline's calls (its `name:`); all hotlines without it.
    hotline: Option<String>,
}

impl RangeQuery {
    fn range(&self) -> Result<Range, ApiError> {
        let to_ms = self.to.unwrap_or_else(|| super::live::now_ms() + 1);
        let from_ms = self.from.unwrap_or(to_ms.saturating_sub(86_400_000));
        if from_ms >= to_ms {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "`from` must be before `to` (Unix milliseconds)",
            ));
        }
        Ok(Range { from_ms, to_ms })
    }

    fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).min(1000)
    }
}

async fn recorded_calls(
    State(config): State<AdminConfig>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    let range = q.range()?;
    let limit = q.limit();
    let outcome = q.outcome;
    let calls = with_records_of(config.records, q.hotline, move |db| {
        stats::calls(db, range, outcome.as_deref(), limit)
    })
    .await?;
    Ok(Json(json!({ "range": range, "calls": calls })).into_response())
}

async fn statistics(State(config): State<AdminConfig>, Query(q): Query<RangeQuery>) -> ApiResult {
    let range = q.range()?;
    // 24 buckets unless told, none shorter than a minute.
    let bucket = q
        .bucket_ms
        .unwrap_or((range.to_ms - range.from_ms).div_ceil(24))
        .max(60_000);
    let summary = with_records_of(config.records, q.hotline, move |db| {
        stats::summary(db, range, bucket)
    })
    .await?;
    Ok(Json(summary).into_response())
}

async fn not_understood(
    State(config): State<AdminConfig>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    let range = q.range()?;
    let limit = q.limit();
    let list = with_records_of(config.records, q.hotline, move |db| {
        stats::not_understood(db, range, limit)
    })
    .await?;
    Ok(Json(json!({ "range": range, "utterances": list })).into_response())
}

fn problems_json(e: &DialplanError) -> serde_json::Value {
    e.problems
        .iter()
        .map(|p| {
            json!({
                "file": p.file, "line": p.pos.line, "col": p.pos.col,
                "message": p.message, "hint": p.hint, "text": p.to_string(),
            })
        })
        .collect()
}

fn status_json(hotline: &AdminHotline) -> serde_json::Value {
    let s = hotline.registry.status();
    json!({
        "name": s.name,
        "numbers": hotline.numbers,
        "file": s.file.display().to_string(),
        "version": s.version,
        "loaded_ms": s.loaded_ms,
        "nodes": s.nodes,
        "intents": s.intents,
        "refused": s.refused.map(|r| json!({ "at_ms": r.at_ms, "problems": problems_json(&r.error) })),
    })
}

async fn hotlines(State(config): State<AdminConfig>) -> Response {
    let list: Vec<_> = config.hotlines.iter().map(status_json).collect();
    Json(json!({ "hotlines": list })).into_response()
}

/// Hotline `name`, or a 404.
fn find_hotline(config: &AdminConfig, name: &str) -> Result<AdminHotline, ApiError> {
    (config.hotlines.iter())
        .find(|h| h.registry.current().plan.name == name)
        .cloned()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no hotline named `{name}`")))
}

/// The registry serving hotline `name`, or a 404.
fn find(config: &AdminConfig, name: &str) -> Result<Arc<HotlineRegistry>, ApiError> {
    find_hotline(config, name).map(|h| h.registry)
}

async fn hotline(State(config): State<AdminConfig>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(status_json(&find_hotline(&config, &name)?)).into_response())
}

fn refused(registry: &HotlineRegistry, e: &DialplanError) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "ok": false,
            "version": registry.version(),
            "problems": problems_json(e),
            "serving": "the previous version keeps serving",
        })),
    )
        .into_response()
}

/// Runs a registry operation (reading files, training the router) off the async workers.
async fn on_registry(
    config: &AdminConfig,
    name: &str,
    op: impl FnOnce(&HotlineRegistry) -> Result<u64, DialplanError> + Send + 'static,
) -> ApiResult {
    let registry = find(config, name)?;
    let result = tokio::task::spawn_blocking({
        let registry = registry.clone();
        move || op(&registry)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(match result {
        Ok(version) => {
            tracing::info!(hotline = name, version, "loaded through the admin API");
            Json(json!({ "ok": true, "version": version })).into_response()
        }
        Err(e) => {
            tracing::warn!(hotline = name, "refused through the admin API:\n{e}");
            refused(&registry, &e)
        }
    })
}

/// Checks a dialplan text (the request body) without loading it; an empty body checks the
/// file on disk.
async fn validate_hotline(
    State(config): State<AdminConfig>,
    Path(name): Path<String>,
    body: String,
) -> ApiResult {
    let registry = find(&config, &name)?;
    let file = registry.status().file;
    let checked = if body.trim().is_empty() {
        crate::dialplan::load_file(&file)
    } else {
        crate::dialplan::load_str(&file.display().to_string(), &body)
    };
    Ok(match checked {
        Ok(plan) => Json(json!({
            "ok": true, "name": plan.name, "nodes": plan.nodes.len(), "intents": plan.intents.len(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "ok": false, "problems": problems_json(&e) })),
        )
            .into_response(),
    })
}

/// Re-reads the hotline's file; a broken file is refused and the old version keeps serving.
async fn reload_hotline(State(config): State<AdminConfig>, Path(name): Path<String>) -> ApiResult {
    on_registry(&config, &name, |r| r.reload()).await
}

/// Replaces the hotline's file with the body and loads it, or refuses it untouched.
async fn upload_hotline(
    State(config): State<AdminConfig>,
    Path(name): Path<String>,
    body: String,
) -> ApiResult {
    on_registry(&config, &name, move |r| r.replace(&body)).await
}

/// The review queue: what callers said that the bot did not understand (not yet reviewed),
/// each with the nearest intents and knowledge entries; and what a review can assign to.
async fn review_queue(
    State(config): State<AdminConfig>,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult {
    let registry = find(&config, &name)?;
    let range = q.range()?;
    let limit = q.limit() as usize;
    let hotline = registry.current();
    let plan_name = hotline.plan.name.clone();
    let missed = with_records(config.records, move |db| {
        super::review::missed(db, &plan_name, range)
    })
    .await?;
    let file = registry.file();
    let items = tokio::task::spawn_blocking({
        let hotline = hotline.clone();
        move || {
            let reviewed = crate::dialplan::history::ChangeLog::of(&file).reviewed();
            super::review::queue(&missed, &hotline, &reviewed, limit)
        }
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let intents: Vec<_> = hotline.plan.intents.iter().map(|i| &i.name).collect();
    let knowledge: Vec<_> = hotline
        .plan
        .knowledge
        .iter()
        .map(|k| json!({ "id": k.id, "topic": k.topic }))
        .collect();
    Ok(Json(json!({
        "hotline": hotline.plan.name, "version": registry.version(), "range": range,
        "items": items, "intents": intents, "knowledge": knowledge,
    }))
    .into_response())
}

/// A trainer's review (`POST .../review`).
#[derive(Debug, Deserialize)]
struct ReviewRequest {
    /// The phrasing, as the queue shows it.
    text: String,
    /// `intent:NAME`, `kb:ID` or `out_of_scope`.
    assign: String,
    /// Who is reviewing.
    trainer: String,
}

/// The HTTP answer to a trainer's change that did not go live; nothing was written.
fn not_trained(e: &crate::dialplan::training::TrainError) -> Response {
    use crate::dialplan::training::TrainError as E;
    let (status, reasons) = match e {
        E::BadRequest(m) => (StatusCode::BAD_REQUEST, vec![m.clone()]),
        E::ChangedOnDisk { .. } => (StatusCode::CONFLICT, vec![e.to_string()]),
        E::Conflict(m) => (StatusCode::CONFLICT, vec![m.clone()]),
        E::Refused(d) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            d.problems.iter().map(|p| p.to_string()).collect(),
        ),
        E::Worse(list) => (StatusCode::UNPROCESSABLE_ENTITY, list.clone()),
        E::Io(m) => (StatusCode::INTERNAL_SERVER_ERROR, vec![m.clone()]),
    };
    tracing::warn!("trainer's change refused: {e}");
    let body = json!({ "ok": false, "error": e.to_string(), "reasons": reasons,
                       "serving": "nothing was written; the serving version is unchanged" });
    (status, Json(body)).into_response()
}

/// Assigns a phrasing to an intent or knowledge entry (a new example, gated by the hotline's
/// tests and held-out phrasings, live if they do not get worse), or marks it out of scope.
async fn review_phrasing(
    State(config): State<AdminConfig>,
    Path(name): Path<String>,
    Json(request): Json<ReviewRequest>,
) -> ApiResult {
    use crate::dialplan::training::{self, Assignment, Gate};
    let registry = find(&config, &name)?;
    let assignment = Assignment::parse(&request.assign).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "`assign` is `intent:NAME`, `kb:ID` or `out_of_scope`",
        )
    })?;
    let started = std::time::Instant::now();
    let (vars, backends) = (config.vars.clone(), config.backends.clone());
    let accepted = tokio::task::spawn_blocking(move || {
        let fetch = |m: &str, u: &str, b: Option<&str>, t| backends.fetch(m, u, b, t);
        let http: crate::dialplan::sim::HttpFn = &fetch;
        let gate = Gate::beside(&registry.file(), vars, http)?;
        training::review(
            &registry,
            &gate,
            &request.text,
            assignment,
            &request.trainer,
        )
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let accepted = match accepted {
        Ok(a) => a,
        Err(e) => return Ok(not_trained(&e)),
    };
    let mut change = serde_json::to_value(&accepted.change).unwrap_or_default();
    change.as_object_mut().map(|c| c.remove("before"));
    tracing::info!(
        hotline = name,
        change = accepted.change.id,
        trainer = accepted.change.trainer,
        target = accepted.change.target,
        "trainer's change live"
    );
    Ok(Json(json!({
        "ok": true, "change": change, "gate": accepted.gate,
        "ms": started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// The change log, newest first, without the file texts kept for reverts.
async fn changes(State(config): State<AdminConfig>, Path(name): Path<String>) -> ApiResult {
    let registry = find(&config, &name)?;
    let log = crate::dialplan::history::ChangeLog::of(&registry.file());
    let list = tokio::task::spawn_blocking(move || log.list())
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let reverted: Vec<u64> = list.iter().filter_map(|c| c.reverts).collect();
    let shown: Vec<_> = list
        .iter()
        .rev()
        .map(|c| {
            json!({
                "id": c.id, "at_ms": c.at_ms, "trainer": c.trainer, "action": c.action,
                "text": c.text, "target": c.target, "version": c.version, "reverts": c.reverts,
                "reverted": reverted.contains(&c.id),
                "revertible": !c.before.is_empty() && c.action != "revert" && !reverted.contains(&c.id),
            })
        })
        .collect();
    Ok(Json(json!({ "changes": shown })).into_response())
}

/// Who reverts (`POST .../changes/{id}/revert`).
#[derive(Debug, Deserialize)]
struct RevertRequest {
    trainer: String,
}

/// Puts the file back as it was before change `id`, if nothing changed it since.
async fn revert_change(
    State(config): State<AdminConfig>,
    Path((name, id)): Path<(String, u64)>,
    Json(request): Json<RevertRequest>,
) -> ApiResult {
    let registry = find(&config, &name)?;
    let change = tokio::task::spawn_blocking(move || {
        crate::dialplan::training::revert(&registry, id, &request.trainer)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let change = match change {
        Ok(c) => c,
        Err(e) => return Ok(not_trained(&e)),
    };
    let shown = json!({ "id": change.id, "reverts": change.reverts, "version": change.version });
    Ok(Json(json!({ "ok": true, "change": shown })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlu::intent::BagOfWords;
    use std::time::Duration;

    const PLAN: &str = "name: desk\nintents:\n  hello:\n    examples: [hello there, hi, good morning]\nhandlers: { no_input: bye, no_match: bye }\nstart: ask\nnodes:\n  ask:\n    ask: { prompt: \"Say something.\" }\n    next: bye\n  bye: { hangup: \"Bye.\" }\n";

    /// The router on a loopback port with a records database and a hotline.
    fn serve_on_loopback(dir: &std::path::Path) -> (String, Arc<HotlineRegistry>) {
        let file = dir.join("desk.yaml");
        std::fs::write(&file, PLAN).unwrap();
        let hotline = Arc::new(HotlineRegistry::load(&file, Arc::new(BagOfWords)).unwrap());
        let records = dir.join("r.db");
        super::super::records::connect(&records).unwrap();
        let config = AdminConfig {
            token: Some("secret".into()),
            records: Some(Database::Sqlite(records)),
            hotlines: AdminHotline::only(hotline.clone()),
            ready: Arc::new(true.into()),
            ..Default::default()
        };
        let base = crate::testkit::admin_on_loopback(config);
        (base, hotline)
    }

    fn call(
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        crate::net::http::fetch_with_headers(
            method,
            &format!("{base}{path}"),
            &headers,
            body,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn every_documented_route_answers_and_the_token_guards_the_api() {
        let dir = std::env::temp_dir().join(format!("voxnav-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (base, hotline) = serve_on_loopback(&dir);
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.len() >= 14);
        for (path, ops) in paths {
            let concrete = path
                .replace("{id}", "no-such-call")
                .replace("{name}", "desk");
            for method in ops.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                let body = (method == "PUT").then_some(PLAN);
                let (status, text) = call(&base, &method, &concrete, Some("secret"), body);
                // An unrouted path is axum's empty 404; a routed one answers, or says what is missing.
                assert!(
                    status != 404 || text.contains("\"error\""),
                    "{method} {path} is documented but not routed: {status} {text}"
                );
                assert_ne!(status, 405, "{method} {path}");
                let secured = spec["paths"][path][method.to_lowercase()]
                    .get("security")
                    .is_none();
                if secured {
                    assert_eq!(
                        call(&base, &method, &concrete, None, body).0,
                        401,
                        "{method} {path} without the token"
                    );
                }
            }
        }
        assert_eq!(
            call(&base, "GET", "/api/stats?from=5&to=1", Some("secret"), None).0,
            400
        );

        // A broken dialplan is refused, with file:line:col, and the served version stays.
        let (status, text) = call(
            &base,
            "PUT",
            "/api/hotlines/desk",
            Some("secret"),
            Some("name: desk\nstart: nowhere\n"),
        );
        assert_eq!(status, 422, "{text}");
        let refused: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            refused["problems"][0]["text"]
                .as_str()
                .unwrap()
                .contains("desk.yaml:"),
            "{text}"
        );
        let before = hotline.version();
        assert_eq!(refused["version"], before);
        std::fs::write(dir.join("desk.yaml"), "name: desk\nnodes: [\n").unwrap();
        let (status, text) = call(
            &base,
            "POST",
            "/api/hotlines/desk/reload",
            Some("secret"),
            None,
        );
        assert_eq!(status, 422, "{text}");
        assert_eq!(hotline.version(), before, "the old version keeps serving");
        let (_, text) = call(&base, "GET", "/api/hotlines/desk", Some("secret"), None);
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            status["refused"]["problems"][0]["line"].as_u64().is_some(),
            "{text}"
        );
        let (code, text) = call(
            &base,
            "POST",
            "/api/hotlines/desk/validate",
            Some("secret"),
            Some(PLAN),
        );
        assert_eq!((code, text.contains("\"ok\":true")), (200, true), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
