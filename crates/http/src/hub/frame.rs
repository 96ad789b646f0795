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
    /// The event's bytes, beginning with `id: <id>\n` when it has an id.
    bytes: Bytes,
    /// Where the id is in `bytes`.
    id: std::ops::Range<usize>,
}

impl Frame {
    /// A frame whose id is `bytes[id]`, which must be UTF-8 (it is the text
    /// of an id the frame was serialized from).
    fn with_id_at(bytes: Bytes, id: std::ops::Range<usize>) -> Frame {
        Frame(Arc::new(Serialized { bytes, id }))
    }

    /// The event `event` with `data`, its id `id`: serialized once, here.
    pub(crate) fn event(id: &str, event: &str, data: &str) -> Frame {
        let (bytes, at) = serialize(id, event, data);
        Frame::with_id_at(bytes, at)
    }

    /// A frame with no id of its own (a gap marker).
    pub(crate) fn untracked(bytes: Bytes) -> Frame {
        Frame::with_id_at(bytes, 0..0)
    }

    /// The event's id (empty for an untracked frame).
    pub(crate) fn id(&self) -> &str {
        // Never fails: the range holds the UTF-8 text of the id, copied in.
        std::str::from_utf8(&self.0.bytes[self.0.id.clone()]).unwrap_or_default()
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
/// in the data is any of CRLF, CR or LF, as in the SSE specification), in
/// one allocation; and where the id is in it.
fn serialize(id: &str, event: &str, data: &str) -> (Bytes, std::ops::Range<usize>) {
    let data = data.as_bytes();
    // Exactly the length, so that `Bytes` takes the vector as it is, with
    // no second allocation: per line of data, `data: `, the line and a line
    // feed, in place of its line break (CR, LF, or CRLF: two bytes, one
    // break).
    let (mut breaks, mut break_bytes) = (0, 0);
    for (at, byte) in data.iter().enumerate() {
        if *byte == b'\r' || *byte == b'\n' {
            break_bytes += 1;
            if !(*byte == b'\n' && at > 0 && data[at - 1] == b'\r') {
                breaks += 1;
            }
        }
    }
    let length = "id: \nevent: \n\n".len()
        + id.len()
        + event.len()
        + (data.len() - break_bytes)
        + "data: \n".len() * (breaks + 1);
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.as_bytes());
    let at = 4..4 + id.len();
    out.extend_from_slice(b"\nevent: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    let mut rest = data;
    loop {
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end]);
        out.push(b'\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.push(b'\n');
    debug_assert_eq!(out.len(), out.capacity());
    (Bytes::from(out), at)
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

/// Said where events may have been lost on the way to this pod (the
/// shared store restarted, failed over or was unreachable, or a reader
/// fell behind the channel's ring): what follows is what is kept.
pub(crate) fn gap_marker() -> Bytes {
    Bytes::from_static(b"event: gap\ndata: {\"reason\":\"events_lost\"}\n\n")
}

/// The id of a serialized event (its first line `id: ...`), if it has one.
pub(crate) fn id_of(bytes: &[u8]) -> Option<&str> {
    let rest = bytes.strip_prefix(b"id: ")?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    std::str::from_utf8(&rest[..end]).ok()
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
            &Frame::event("7", "step", "a\r\nb\rc\nd").bytes()[..],
            b"id: 7\nevent: step\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(
            &Frame::event("1", "m", "").bytes()[..],
            b"id: 1\nevent: m\ndata: \n\n"
        );
        assert_eq!(
            &Frame::event("2", "m", "a\n\nb\r\n").bytes()[..],
            b"id: 2\nevent: m\ndata: a\ndata: \ndata: b\ndata: \n\n"
        );
        assert_eq!(
            &Frame::event("3", "m", "\n\r\r\nx").bytes()[..],
            b"id: 3\nevent: m\ndata: \ndata: \ndata: \ndata: x\n\n"
        );
        assert_eq!(Frame::event("abc-9", "m", "x").id(), "abc-9");
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
