//! The appends the store tests write, and what they read back from an
//! append's answer.

use last_call_store::{Append, Appended, Flag, Kind};

/// Event number `n` of a resumable `channel`, its data `{"n":n}`.
pub fn event(channel: &str, n: usize) -> Append {
    Append {
        channel: channel.into(),
        kind: Kind::Resumable,
        event: "progress".into(),
        data: format!("{{\"n\":{n}}}"),
        flag: Flag::Event,
    }
}

/// The ids the store gave, each event added (a closed channel fails the
/// test).
pub fn added(appended: &[Appended]) -> Vec<String> {
    appended
        .iter()
        .map(|a| match a {
            Appended::Added(id) => id.to_string(),
            Appended::Closed(id) => panic!("closed at {id}"),
        })
        .collect()
}
