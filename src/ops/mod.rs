//! Operations: Prometheus metrics, the calls in progress, and the admin HTTP API.

pub mod admin;
pub mod live;
pub mod metrics;
