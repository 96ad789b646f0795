//! The bytes of the Server-Sent Events the hub writes: each event is
//! serialized once, then shared by every subscriber (`Bytes` clones are a
//! reference count).

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// One serialized event and its id, as queued to each subscriber and kept
/// in its channel's history. One pointer wide: a subscriber's queue holds
/// many of them (a slot per queued event), and a clone is one reference
/// count.
#[derive(Debug, Clone)]
pub(crate) struct Frame(Arc<Serialized>);

#[derive(Debug)]
struct Serialized {
    id: Box<str>,
    bytes: Bytes,
}

impl Frame {
    pub(crate) fn new(id: &str, bytes: Bytes) -> Frame {
        Frame(Arc::new(Serialized {
            id: id.into(),
            bytes,
        }))
    }

    /// The event's id.
    pub(crate) fn id(&self) -> &str {
        &self.0.id
    }

    /// The event as written on the wire.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0.bytes
    }
}

/// How long a browser waits before reconnecting, sent as `retry:` at the
/// start of every stream and with the reconnect hint.
pub(crate) const RETRY: Duration = Duration::from_millis(1000);

/// `true` if `text` can go on one SSE field line (no line break, no NUL).
pub(crate) fn is_field_safe(text: &str) -> bool {
    !text.contains(['\n', '\r', '\0'])
}

/// `id:`, `event:` and one `data:` line per line of `data` (a line break
/// in the data is any of CRLF, CR or LF, as in the SSE specification).
pub(crate) fn event(id: &str, event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(id.len() + event.len() + data.len() + 32);
    out.push_str("id: ");
    out.push_str(id);
    out.push_str("\nevent: ");
    out.push_str(event);
    out.push('\n');
    let data = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The first bytes of every stream: how long to wait before reconnecting.
pub(crate) fn retry() -> Bytes {
    Bytes::from(format!("retry: {}\n\n", RETRY.as_millis()))
}

/// Said when the history no longer reaches back to the client's
/// `Last-Event-ID`: events were missed; what follows is what is kept.
pub(crate) fn gap(last_event_id: &str) -> Bytes {
    let data = format!(
        "{{\"last_event_id\":{},\"reason\":\"history_exhausted\"}}",
        json_string(last_event_id)
    );
    Bytes::from(format!("event: gap\ndata: {data}\n\n"))
}

/// The reconnect hint a resumable stream ends with at ClosingStreams: the
/// browser reconnects after `retry:` with `Last-Event-ID` set to `id`.
pub(crate) fn reconnect(last_id: Option<&str>) -> Bytes {
    let mut out = format!("retry: {}\n", RETRY.as_millis());
    if let Some(id) = last_id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str(&format!(
        "event: reconnect\ndata: {{\"reason\":\"server shutting down\",\"retry_ms\":{}}}\n\n",
        RETRY.as_millis()
    ));
    Bytes::from(out)
}

/// The comment a client too slow to keep up is disconnected with.
pub(crate) const TOO_SLOW: &[u8] = b": disconnected: too slow\n\n";
/// The comment sent on an idle stream.
pub(crate) const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// A JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_data_becomes_one_data_line_each() {
        assert_eq!(
            &event("7", "step", "a\r\nb\rc\nd")[..],
            b"id: 7\nevent: step\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(&event("1", "m", "")[..], b"id: 1\nevent: m\ndata: \n\n");
    }

    #[test]
    fn field_lines_refuse_line_breaks() {
        assert!(is_field_safe("task_failed"));
        for bad in ["a\nb", "a\rb", "a\0b"] {
            assert!(!is_field_safe(bad));
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
