//! Operations: Prometheus metrics, the calls in progress, call records (SQLite), and the
//! admin HTTP API.

pub mod admin;
pub mod live;
pub mod log;
pub mod metrics;
pub mod records;
pub mod stats;
