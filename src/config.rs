//! Shutdown timings, set from code or defaulted from `GS_*` environment
//! variables so that operators tune them from the Deployment manifest.
//!
//! A malformed value is an error that names the variable, never a silent
//! default: a typo in a manifest should stop the pod at start-up, not cut
//! streams at the next rollout.

use std::time::Duration;

/// What a second SIGTERM/SIGINT does once the shutdown sequence has started.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondSignal {
    /// A second SIGINT (Ctrl-C) exits at once; a second SIGTERM is ignored
    /// (the kubelet does not send one, but tools that retry might).
    #[default]
    SigintExits = 0,
    /// Both are ignored: only the sequence (or SIGKILL) ends the process.
    Ignore = 1,
    /// Both exit at once, with status 128 + the signal number.
    Exit = 2,
}

/// The shutdown timings. See the README's configuration table.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Keep serving this long after the signal before streams may be
    /// declared done (`GS_DRAIN_DELAY_SECONDS`, default 5 s): endpoint
    /// removal is asynchronous, so load balancers still send requests.
    pub drain_delay: Duration,
    /// From the signal to Stopped, at most (`GS_SHUTDOWN_TIMEOUT_SECONDS`,
    /// default 25 s, inside Kubernetes' default 30 s grace period).
    pub shutdown_timeout: Duration,
    /// Streams still open this long before the deadline are asked to finish
    /// (`GS_CLOSE_NOTICE_SECONDS`, default 5 s).
    pub close_notice: Duration,
    /// What a second signal does (`GS_SECOND_SIGNAL`: `ignore` or `exit`).
    pub second_signal: SecondSignal,
    /// End the process this long after Stopped if the host has not exited
    /// (`GS_EXIT_WATCHDOG_SECONDS`, default 3 s; `None`/0 disables). Only
    /// armed by installed signal handlers.
    pub exit_watchdog: Option<Duration>,
    /// Whether SIGINT starts the sequence too (default true).
    pub handle_sigint: bool,
}

/// Environment variable names.
pub mod env {
    /// Drain delay, in seconds.
    pub const DRAIN_DELAY: &str = "GS_DRAIN_DELAY_SECONDS";
    /// Total shutdown budget, in seconds.
    pub const SHUTDOWN_TIMEOUT: &str = "GS_SHUTDOWN_TIMEOUT_SECONDS";
    /// Close notice, in seconds.
    pub const CLOSE_NOTICE: &str = "GS_CLOSE_NOTICE_SECONDS";
    /// Second-signal policy: `ignore` or `exit`.
    pub const SECOND_SIGNAL: &str = "GS_SECOND_SIGNAL";
    /// Exit watchdog, in seconds (0 disables).
    pub const EXIT_WATCHDOG: &str = "GS_EXIT_WATCHDOG_SECONDS";
}

impl Default for Config {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(25),
            close_notice: Duration::from_secs(5),
            second_signal: SecondSignal::SigintExits,
            exit_watchdog: Some(Duration::from_secs(3)),
            handle_sigint: true,
        }
    }
}

/// A malformed configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable (or, for values set from code, the
    /// variable that would have set it).
    pub variable: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.variable, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn seconds(variable: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let error = |reason: &str| ConfigError {
        variable,
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| error("expected a number of seconds, such as 5 or 0.5"))?;
    duration_from_secs(variable, value).map_err(|mut e| {
        e.value = text.to_owned();
        e
    })
}

/// Checks one duration given in seconds: finite and non-negative.
pub(crate) fn duration_from_secs(
    variable: &'static str,
    value: f64,
) -> Result<Duration, ConfigError> {
    let error = |reason: &str| ConfigError {
        variable,
        value: value.to_string(),
        reason: reason.to_owned(),
    };
    if value.is_nan() {
        return Err(error("not a number"));
    }
    if value < 0.0 {
        return Err(error("must not be negative"));
    }
    Duration::try_from_secs_f64(value).map_err(|_| error("must be a finite number of seconds"))
}

impl Config {
    /// The defaults, overridden by every `GS_*` variable that is set.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `lookup`
    /// (for tests and hosts that keep their settings elsewhere).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(text) = lookup(env::DRAIN_DELAY) {
            config.drain_delay = seconds(env::DRAIN_DELAY, &text)?;
        }
        if let Some(text) = lookup(env::SHUTDOWN_TIMEOUT) {
            config.shutdown_timeout = seconds(env::SHUTDOWN_TIMEOUT, &text)?;
        }
        if let Some(text) = lookup(env::CLOSE_NOTICE) {
            config.close_notice = seconds(env::CLOSE_NOTICE, &text)?;
        }
        if let Some(text) = lookup(env::EXIT_WATCHDOG) {
            let watchdog = seconds(env::EXIT_WATCHDOG, &text)?;
            config.exit_watchdog = (!watchdog.is_zero()).then_some(watchdog);
        }
        if let Some(text) = lookup(env::SECOND_SIGNAL) {
            config.second_signal = match text.trim().to_ascii_lowercase().as_str() {
                "ignore" => SecondSignal::Ignore,
                "exit" => SecondSignal::Exit,
                _ => {
                    return Err(ConfigError {
                        variable: env::SECOND_SIGNAL,
                        value: text,
                        reason: "expected `ignore` or `exit`".to_owned(),
                    })
                }
            };
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the relations between the durations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.close_notice > self.shutdown_timeout {
            return Err(ConfigError {
                variable: env::CLOSE_NOTICE,
                value: self.close_notice.as_secs_f64().to_string(),
                reason: format!(
                    "the close notice is longer than {} ({} s)",
                    env::SHUTDOWN_TIMEOUT,
                    self.shutdown_timeout.as_secs_f64()
                ),
            });
        }
        if self.drain_delay > self.shutdown_timeout {
            return Err(ConfigError {
                variable: env::DRAIN_DELAY,
                value: self.drain_delay.as_secs_f64().to_string(),
                reason: format!(
                    "the drain delay is longer than {} ({} s)",
                    env::SHUTDOWN_TIMEOUT,
                    self.shutdown_timeout.as_secs_f64()
                ),
            });
        }
        Ok(())
    }

    /// The longest the process can take from the signal to its exit: the
    /// shutdown timeout plus the exit watchdog. Must be below the pod's
    /// `terminationGracePeriodSeconds`.
    pub fn worst_case_exit(&self) -> Duration {
        self.shutdown_timeout + self.exit_watchdog.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_fit_the_default_grace_period() {
        let config = from(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert!(config.worst_case_exit() < Duration::from_secs(30));
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            (env::DRAIN_DELAY, "0.5"),
            (env::SHUTDOWN_TIMEOUT, "10"),
            (env::CLOSE_NOTICE, " 2 "),
            (env::SECOND_SIGNAL, "Exit"),
            (env::EXIT_WATCHDOG, "0"),
        ])
        .unwrap();
        assert_eq!(config.drain_delay, Duration::from_millis(500));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(config.close_notice, Duration::from_secs(2));
        assert_eq!(config.second_signal, SecondSignal::Exit);
        assert_eq!(config.exit_watchdog, None);
        assert_eq!(
            from(&[(env::SECOND_SIGNAL, "ignore")])
                .unwrap()
                .second_signal,
            SecondSignal::Ignore
        );
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (variable, value) in [
            (env::DRAIN_DELAY, "five"),
            (env::DRAIN_DELAY, "-1"),
            (env::SHUTDOWN_TIMEOUT, "NaN"),
            (env::SHUTDOWN_TIMEOUT, "inf"),
            (env::CLOSE_NOTICE, ""),
            (env::EXIT_WATCHDOG, "-0.1"),
            (env::SECOND_SIGNAL, "sometimes"),
        ] {
            let error = from(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value:?}");
            assert!(error.to_string().contains(variable), "{error}");
        }
    }

    #[test]
    fn a_close_notice_longer_than_the_timeout_is_rejected() {
        let error = from(&[(env::SHUTDOWN_TIMEOUT, "3"), (env::CLOSE_NOTICE, "4")]).unwrap_err();
        assert_eq!(error.variable, env::CLOSE_NOTICE);
        assert!(error.to_string().contains(env::SHUTDOWN_TIMEOUT));
        let error = from(&[
            (env::SHUTDOWN_TIMEOUT, "3"),
            (env::DRAIN_DELAY, "4"),
            (env::CLOSE_NOTICE, "1"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, env::DRAIN_DELAY);
    }
}
