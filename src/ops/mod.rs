//! Operations: observers of the server's reports (`report`): Prometheus metrics, the calls in
//! progress, call records (SQLite), the stdout lines; and the admin HTTP API over them.

pub mod admin;
pub mod db;
pub mod desk;
pub mod lines;
pub mod live;
pub mod log;
pub mod metrics;
pub mod records;
pub mod review;
pub mod stats;

/// The token of `Authorization: Bearer TOKEN` ("" when there is none): the admin API's and
/// the agent desk's.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> &str {
    (headers.get(axum::http::header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}
