//! What the probe listener needs, from code or from the environment.

use crate::config::ConfigError;
use crate::env_text::text;
use crate::seconds;
use std::net::SocketAddr;
use std::time::Duration;

/// The probe listener's address variable.
pub const PROBE_ADDR: &str = "GS_PROBE_ADDR";
/// The bearer token `/drain` needs; unset, `/drain` never drains (403).
pub const DRAIN_TOKEN: &str = "GS_DRAIN_TOKEN";
/// How old the host's last heartbeat may be before `/healthz` fails.
pub const HEARTBEAT_STALE: &str = "GS_HEARTBEAT_STALE_SECONDS";

/// How the probe listener is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOptions {
    /// Where to listen: `host:port` (port 0: a free port).
    pub addr: String,
    /// The bearer token `POST /drain` requires (`None`: `/drain` answers
    /// 403 and never drains).
    pub drain_token: Option<String>,
    /// `/healthz` answers 503 once the last heartbeat is older than this
    /// (default 10 s). A host that never sends one is always alive.
    pub heartbeat_stale_after: Duration,
}

impl ProbeOptions {
    /// Listens on `addr`, no drain token, the default staleness.
    pub fn new(addr: impl Into<String>) -> ProbeOptions {
        ProbeOptions {
            addr: addr.into(),
            drain_token: None,
            heartbeat_stale_after: Duration::from_secs(10),
        }
    }

    /// From `GS_PROBE_ADDR` (`None` when unset), `GS_DRAIN_TOKEN` and
    /// `GS_HEARTBEAT_STALE_SECONDS`. A malformed value names its variable.
    pub fn from_env() -> Result<Option<ProbeOptions>, ConfigError> {
        match text(PROBE_ADDR)? {
            Some(addr) => Self::from_env_with_addr(&addr).map(Some),
            None => Ok(None),
        }
    }

    /// Listens on `addr`, with the drain token and staleness from the
    /// environment.
    pub fn from_env_with_addr(addr: &str) -> Result<ProbeOptions, ConfigError> {
        let mut options = ProbeOptions::new(addr);
        options.drain_token = crate::env_text::secret(DRAIN_TOKEN)?.filter(|t| !t.is_empty());
        if let Some(stale) = text(HEARTBEAT_STALE)? {
            let value = stale.trim().parse::<f64>().map_err(|_| ConfigError {
                variable: HEARTBEAT_STALE,
                value: stale.clone(),
                reason: "expected a number of seconds, such as 10".into(),
            })?;
            options.heartbeat_stale_after = stale_after(value)?;
        }
        Ok(options)
    }

    /// The address to bind, resolved; a malformed one names `GS_PROBE_ADDR`.
    pub(crate) fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        crate::env_text::listen_addr(PROBE_ADDR, &self.addr)
    }
}

/// Checks a staleness in seconds: positive; infinity means never stale.
pub(crate) fn stale_after(value: f64) -> Result<Duration, ConfigError> {
    let duration = seconds::config_from_secs(value).map_err(|bad| ConfigError {
        variable: HEARTBEAT_STALE,
        value: value.to_string(),
        reason: bad.reason().into(),
    })?;
    if duration.is_zero() {
        return Err(ConfigError {
            variable: HEARTBEAT_STALE,
            value: value.to_string(),
            reason: "must be more than 0".into(),
        });
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_name_the_variable() {
        assert!(ProbeOptions::new("127.0.0.1:0").socket_addr().is_ok());
        assert!(ProbeOptions::new("[::1]:0").socket_addr().is_ok());
        assert!(ProbeOptions::new("localhost:8081").socket_addr().is_ok());
        for bad in [
            "",
            "8081",
            "127.0.0.1:99999",
            "127.0.0.1:http",
            "no such host:1",
        ] {
            let error = ProbeOptions::new(bad).socket_addr().unwrap_err();
            assert_eq!(error.variable, PROBE_ADDR, "{bad:?}");
            assert!(error.to_string().contains(PROBE_ADDR));
        }
    }

    #[test]
    fn staleness_must_be_positive() {
        assert_eq!(stale_after(2.5).unwrap(), Duration::from_millis(2500));
        assert_eq!(stale_after(f64::INFINITY).unwrap(), Duration::MAX);
        for bad in [0.0, -1.0, f64::NAN] {
            assert_eq!(stale_after(bad).unwrap_err().variable, HEARTBEAT_STALE);
        }
    }
}
