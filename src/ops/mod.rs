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
