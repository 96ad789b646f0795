//! The server's settings from the environment, validated at start: a bad
//! value stops the server with an error that names the setting, never a
//! silent default.

use std::time::Duration;

/// The HTTP side's settings (the `GS_*` durations are the runtime's).
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub heartbeat: Duration,
    pub max_tasks: usize,
    pub keep_finished: Duration,
    pub max_body: usize,
}

/// The defaults, as documented in the contract (docs/examples.md).
pub const DEFAULT_MAX_TASKS: usize = 500;
pub const DEFAULT_KEEP_FINISHED_SECONDS: f64 = 300.0;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

fn read(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("invalid {name}: not UTF-8")),
    }
}

/// Positive, finite seconds.
fn seconds(name: &str, default: f64) -> Result<Duration, String> {
    let Some(text) = read(name)? else {
        return Duration::try_from_secs_f64(default).map_err(|e| e.to_string());
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!("invalid {name}={text:?}: expected a positive, finite number of seconds")
        })
}

/// An integer in `range`.
fn integer<T>(name: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = read(name)? else {
        return Ok(default);
    };
    text.trim()
        .parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            format!(
                "invalid {name}={text:?}: expected an integer from {} to {}",
                range.start(),
                range.end()
            )
        })
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            host: read("HOST")?.unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: integer("PORT", 8080, 0..=65535)?,
            heartbeat: seconds("SSE_HEARTBEAT_SECONDS", 1.0)?,
            max_tasks: integer("MAX_TASKS", DEFAULT_MAX_TASKS, 1..=1_000_000)?,
            keep_finished: seconds("TASK_KEEP_SECONDS", DEFAULT_KEEP_FINISHED_SECONDS)?,
            max_body: integer(
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1..=16 * 1024 * 1024,
            )?,
        })
    }
}
