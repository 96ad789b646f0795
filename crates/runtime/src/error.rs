//! The one error type of the Rust API. Each variant maps to one `gs_status`
//! code of the C ABI (see `ffi::status`).

use crate::config::ConfigError;
use crate::phase::Phase;
use crate::stream_counter::CountError;

/// Everything that can go wrong in this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A stream ended without a matching begin.
    NoActiveStream,
    /// Too many streams are active to count another.
    TooManyStreams,
    /// The shutdown sequence has started, so the phase cannot go back to
    /// Serving.
    SequenceStarted,
    /// A timeout that is NaN or negative.
    InvalidTimeout(f64),
    /// The signal handlers are already installed in this process.
    AlreadyInstalled,
    /// A configuration value is malformed.
    Config(ConfigError),
    /// The operating system refused (installing a signal handler, starting
    /// a thread).
    Os(std::io::Error),
    /// A blocking wait was called from a phase listener or a shutdown hook,
    /// where it could wait for itself. Returned at once.
    Reentrant(&'static str),
    /// A wait for a phase ended at its timeout; the phase then.
    TimedOut(Phase),
    /// An argument the API cannot accept (for example a NUL in a name).
    InvalidArgument(&'static str),
    /// The probe listener or the stream hub already runs in this process,
    /// on this address.
    AlreadyStarted(std::net::SocketAddr),
    /// The stream hub has not been started in this process.
    HubNotStarted,
    /// The stream hub holds as many channels as it may, none of them idle.
    HubFull,
    /// The stream hub's queue to its shared store is full.
    HubBusy,
    /// Too late in the shutdown for this to take effect (a shutdown hook
    /// registered once Stopping has begun); says why.
    TooLate(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoActiveStream => CountError::NoActiveStream.fmt(f),
            Error::TooManyStreams => CountError::TooManyStreams.fmt(f),
            Error::SequenceStarted => f.write_str(
                "the shutdown sequence has started; draining can no longer be turned off",
            ),
            Error::InvalidTimeout(value) => write!(
                f,
                "invalid timeout {value}: a timeout is a non-negative number of seconds (infinity: no limit)"
            ),
            Error::AlreadyInstalled => {
                f.write_str("signal handlers are already installed in this process")
            }
            Error::Config(error) => error.fmt(f),
            Error::Os(error) => write!(f, "operating system error: {error}"),
            Error::Reentrant(what) => write!(
                f,
                "{what} was called from a phase callback or shutdown hook, where it could wait for itself; \
                 wait on another thread"
            ),
            Error::TimedOut(phase) => write!(f, "timed out (the phase is {phase})"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::AlreadyStarted(addr) => {
                write!(f, "the listener already runs in this process, on {addr}")
            }
            Error::HubNotStarted => f.write_str("the stream hub has not been started in this process"),
            Error::HubFull => f.write_str(
                "the stream hub holds as many channels as it may (GS_STREAM_MAX_CHANNELS), none of them idle",
            ),
            Error::TooLate(why) => f.write_str(why),
            Error::HubBusy => f.write_str(
                "the stream hub's queue to its shared store is full (GS_STREAM_PUBLISH_QUEUE_EVENTS): the store is slower than the publishers",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(error) => Some(error),
            Error::Os(error) => Some(error),
            _ => None,
        }
    }
}

impl From<CountError> for Error {
    fn from(error: CountError) -> Self {
        match error {
            CountError::NoActiveStream => Error::NoActiveStream,
            CountError::TooManyStreams => Error::TooManyStreams,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Error::Config(error)
    }
}

/// Turns a timeout in seconds, as hosts pass it, into a Rust timeout, by
/// the crate's one rule: NaN and negative values are errors; infinity (and
/// anything too large to represent) means no limit.
pub fn timeout_from_secs(seconds: f64) -> Result<Option<std::time::Duration>, Error> {
    crate::seconds::from_secs(seconds).map_err(|_| Error::InvalidTimeout(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_in_seconds() {
        assert_eq!(
            timeout_from_secs(1.5).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(timeout_from_secs(0.0).unwrap(), Some(Duration::ZERO));
        assert_eq!(timeout_from_secs(f64::INFINITY).unwrap(), None);
        assert_eq!(timeout_from_secs(1e300).unwrap(), None);
        assert!(matches!(
            timeout_from_secs(-0.5),
            Err(Error::InvalidTimeout(_))
        ));
        assert!(matches!(
            timeout_from_secs(f64::NAN),
            Err(Error::InvalidTimeout(_))
        ));
        assert!(matches!(
            timeout_from_secs(f64::NEG_INFINITY),
            Err(Error::InvalidTimeout(_))
        ));
    }
}
