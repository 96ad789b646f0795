//! The SSE wire, as the tracked body reads and writes it: the last `id:`
//! of an event's bytes (axum's `Event` keeps its fields to itself, so the
//! bytes are where the id is), and the reconnect hint.

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// The value of the last `id` field in `event` (one event or comment, as
/// axum writes each in a frame of its own), if it has one. A line `id`
/// alone is an empty id, as the SSE parser reads it.
pub(crate) fn last_id(event: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', event).chain(std::iter::once(event.len()));
    for end in ends {
        let line = &event[start..end];
        start = end + 1;
        if line.starts_with(b"id") {
            let rest = &line[2..];
            if rest.is_empty() {
                found = Some(rest);
            } else if let Some(value) = rest.strip_prefix(b":") {
                // One space after the colon is the separator, not the value.
                found = Some(value.strip_prefix(b" ").unwrap_or(value));
            }
        }
    }
    found
}

/// The end of a resumable stream at its moment: `retry:` (how long the
/// client waits before it reconnects), the last `id:` it was sent (so
/// that it resumes from there), `event: reconnect` and why.
pub(crate) fn reconnect_event(retry: Duration, last_id: Option<&[u8]>) -> Bytes {
    let retry_ms = retry.as_millis();
    let mut event = BytesMut::with_capacity(128);
    event.put_slice(format!("retry: {retry_ms}\n").as_bytes());
    if let Some(id) = last_id {
        event.put_slice(b"id: ");
        event.put_slice(id);
        event.put_u8(b'\n');
    }
    event.put_slice(b"event: reconnect\n");
    event.put_slice(
        format!("data: {{\"reason\":\"server shutting down\",\"retry_ms\":{retry_ms}}}\n\n")
            .as_bytes(),
    );
    event.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_id_field_of_an_event() {
        assert_eq!(last_id(b"id: 7\nevent: x\ndata: y\n\n"), Some(&b"7"[..]));
        assert_eq!(last_id(b"event: x\ndata: y\nid:8\n\n"), Some(&b"8"[..]));
        assert_eq!(last_id(b"data: id: 9\n\n"), None);
        assert_eq!(last_id(b":heartbeat\n\n"), None);
        assert_eq!(last_id(b"id\ndata: x\n\n"), Some(&b""[..]));
        assert_eq!(last_id(b"idle: 3\n\n"), None);
        assert_eq!(last_id(b"id:  two spaces\n"), Some(&b" two spaces"[..]));
        assert_eq!(last_id(b"id: a\nid: b"), Some(&b"b"[..]));
    }

    #[test]
    fn the_reconnect_hint() {
        let event = reconnect_event(Duration::from_millis(1000), Some(b"41"));
        assert_eq!(
            &event[..],
            b"retry: 1000\nid: 41\nevent: reconnect\ndata: {\"reason\":\"server shutting down\",\"retry_ms\":1000}\n\n"
        );
        let first = reconnect_event(Duration::from_millis(250), None);
        assert!(first.starts_with(b"retry: 250\nevent: reconnect\n"));
    }
}
