//! Event ids that are valid on every pod: `<epoch>-<ms>-<seq>`.
//!
//! `<ms>-<seq>` is the entry's id in the channel's Redis stream (strictly
//! increasing within the stream). `<epoch>` names the stream's incarnation:
//! eight hex digits drawn when the channel's keys are created. A Redis that
//! restarts empty, or a channel that expired and was published to again,
//! gets a new epoch, so an id from before can never be mistaken for a
//! position in the new history (even if the clock went back): the client
//! gets `gap`, never a silent hole.

use std::fmt;

/// A parsed event id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The channel's incarnation (1 to 16 lower-case hex digits).
    pub epoch: String,
    /// The Redis stream entry id's two parts.
    pub ms: u64,
    /// See `ms`.
    pub seq: u64,
}

impl EventId {
    /// Parses `<epoch>-<ms>-<seq>`. `None` for anything else, including
    /// numbers too large for 64 bits: such an id is unknown, and a resume
    /// from it starts with `gap`.
    pub fn parse(text: &str) -> Option<EventId> {
        let mut parts = text.split('-');
        let (epoch, ms, seq) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let hex = |s: &str| {
            !s.is_empty()
                && s.len() <= 16
                && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !hex(epoch) || !digits(ms) || !digits(seq) {
            return None;
        }
        Some(EventId {
            epoch: epoch.to_owned(),
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// From a channel's epoch and a Redis stream entry id (`ms-seq`).
    pub fn from_entry(epoch: &str, entry: &str) -> Option<EventId> {
        EventId::parse(&format!("{epoch}-{entry}"))
    }

    /// The Redis stream entry id, `ms-seq`.
    pub fn entry(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.epoch, self.ms, self.seq)
    }
}

/// A fresh epoch: eight random hex digits.
pub fn fresh_epoch() -> String {
    format!("{:08x}", fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id = EventId::parse("0a1b2c3d-1733500000000-7").unwrap();
        assert_eq!(id.epoch, "0a1b2c3d");
        assert_eq!(id.entry(), "1733500000000-7");
        assert_eq!(id.to_string(), "0a1b2c3d-1733500000000-7");
        assert_eq!(EventId::from_entry("0a1b2c3d", "1733500000000-7"), Some(id));
    }

    #[test]
    fn anything_else_is_unknown() {
        for bad in [
            "",
            "7",
            "1-2",
            "a-1-2-3",
            "A0-1-2",
            "g-1-2",
            "a--2",
            "a-1-",
            "a-99999999999999999999-1",
            "a-1-99999999999999999999999",
            "00000000000000000-1-1",
            "a- 1-2",
            "a-+1-2",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epochs_are_eight_hex_digits() {
        let epoch = fresh_epoch();
        assert_eq!(epoch.len(), 8);
        assert!(EventId::parse(&format!("{epoch}-1-0")).is_some());
    }
}
