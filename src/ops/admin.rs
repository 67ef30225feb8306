//! The admin HTTP API (axum) beside the SIP server: `/healthz` and `/metrics` (Prometheus)
//! are open, as monitoring expects; everything under `/api/` needs the admin token
//! (`Authorization: Bearer TOKEN`), and without a configured token `/api/` is refused
//! entirely rather than left open.
//!
//! - `GET /healthz` -> `ok`
//! - `GET /metrics` -> the Prometheus text format (`ops::metrics`)
//! - `GET /api/calls` -> the calls in progress (node, transcript so far)
//! - `GET /api/calls/{id}` -> one call in progress, or 404

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// Admin API settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// None: `/api/` answers 403 to everyone.
    pub token: Option<String>,
}

/// The admin routes.
pub fn router(config: AdminConfig) -> Router {
    let api = Router::new()
        .route("/api/calls", get(live_calls))
        .route("/api/calls/{id}", get(live_call))
        .layer(middleware::from_fn_with_state(
            config.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .merge(api)
        .with_state(config)
}

/// Serves the admin API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, config: AdminConfig) -> std::io::Result<()> {
    axum::serve(listener, router(config)).await
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
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared without early exit, so the time taken does not reveal the matching prefix.
    let matches = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
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

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::metrics().render(),
    )
}

async fn live_calls() -> impl IntoResponse {
    Json(serde_json::json!({ "calls": super::live::all() }))
}

async fn live_call(Path(id): Path<String>) -> Response {
    match super::live::get(&id) {
        Some(call) => Json(call).into_response(),
        None => (StatusCode::NOT_FOUND, "no such call in progress\n").into_response(),
    }
}
