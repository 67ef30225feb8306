//! The live call, in rooms:
//!
//! - `session`: the sans-IO conversation of one call (dialplan engine, turn-taking, playback,
//!   the transfer bridge), inputs with `now`, outputs to carry out, timers as data;
//! - `turn`: turn detectors (when the caller starts and stops talking);
//! - `driver`: the tokio task that runs a session on the shared engines and the media driver;
//! - `hotlines`: the hotlines one server answers, by dialled number;
//! - `transfer`: where transfer targets ring (the seat directory);
//! - `callback`: callbacks queued by calls, placed as agents free up;
//! - `caller`: `voxnav call`, the scripted test caller.

pub mod callback;
pub mod caller;
#[cfg(feature = "speech")]
pub mod driver;
#[cfg(feature = "speech")]
pub mod hotlines;
pub mod session;
pub mod transfer;
pub mod turn;
