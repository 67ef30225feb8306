//! Logs: structured `tracing` events on stderr. Every event of a call carries its call id (the
//! `call` span, entered by the media task and by the threads the call starts), so
//! `grep <call-id>` finds a whole call.
//!
//! The level comes from `VOXNAV_LOG` (an `EnvFilter`, e.g. `info`, `debug`,
//! `voxnav::call=debug,info`), else the config file's `log: { level }`, else `info` (ONNX
//! Runtime's own set-up chatter is held to `warn` unless the directive names `ort`). The format
//! is human-readable text, or one JSON object per line with `VOXNAV_LOG_FORMAT=json` or
//! `log: { format: json }` (for a log shipper).
//!
//! stdout is separate: the `voxnav: decision|latency|transfer {json}` records and the status
//! lines tools and tests read.

use tracing_subscriber::EnvFilter;

/// Log settings from the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `voxnav=debug`.
    pub level: Option<String>,
    pub json: bool,
}

/// Installs the global subscriber. Errors name the bad filter.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let (directive, from) = match std::env::var("VOXNAV_LOG") {
        Ok(v) if !v.trim().is_empty() => (v, "VOXNAV_LOG"),
        _ => (
            config.level.clone().unwrap_or_else(|| "info".into()),
            "log.level",
        ),
    };
    // ONNX Runtime (under Piper) logs its session set-up at info through `tracing`: kept to
    // warnings unless the directive names it.
    let directive = if directive.contains("ort") {
        directive
    } else {
        format!("{directive},ort=warn")
    };
    let filter = EnvFilter::try_new(&directive)
        .map_err(|e| format!("{from} `{directive}`: {e} (e.g. info, debug, voxnav=debug)"))?;
    let json = config.json
        || std::env::var("VOXNAV_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    installed.map_err(|e| e.to_string())
}
