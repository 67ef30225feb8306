//! The calls in progress, as the admin API shows them: when each started, where it is in the
//! dialplan, its transcript so far. Updated by the call's brain once per turn (a short mutex,
//! no I/O), read by the admin API.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

/// One call in progress.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveCall {
    pub call_id: String,
    /// Unix time in milliseconds.
    pub started_ms: u64,
    pub hotline: String,
    pub node: String,
    pub turns: u32,
    pub transcript: Vec<String>,
    /// "bot", "transfer ringing", "with agent".
    pub state: String,
}

static LIVE: LazyLock<Mutex<BTreeMap<String, LiveCall>>> = LazyLock::new(Default::default);

fn lock() -> std::sync::MutexGuard<'static, BTreeMap<String, LiveCall>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix time now in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A call was answered.
pub fn started(call_id: &str, hotline: &str) {
    lock().insert(
        call_id.to_string(),
        LiveCall {
            call_id: call_id.to_string(),
            started_ms: now_ms(),
            hotline: hotline.to_string(),
            state: "bot".into(),
            ..Default::default()
        },
    );
}

/// Changes one call's entry (if it is still live).
pub fn update(call_id: &str, change: impl FnOnce(&mut LiveCall)) {
    if let Some(call) = lock().get_mut(call_id) {
        change(call);
    }
}

/// The call ended.
pub fn ended(call_id: &str) {
    lock().remove(call_id);
}

/// Every call in progress, oldest first.
pub fn all() -> Vec<LiveCall> {
    let mut calls: Vec<LiveCall> = lock().values().cloned().collect();
    calls.sort_by_key(|c| c.started_ms);
    calls
}

/// One call in progress.
pub fn get(call_id: &str) -> Option<LiveCall> {
    lock().get(call_id).cloned()
}
