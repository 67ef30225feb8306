//! One module per command of the `voxnav` binary; `main.rs` parses and dispatches.

pub mod call;
pub mod dialplan;
pub mod models;
pub mod serve;
pub mod speech;
