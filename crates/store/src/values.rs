//! Reading the replies of the store's scripts and stream commands.

use crate::ids::EventId;
use redis::Value;

/// What kind of entry a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// An event published by a host.
    Event,
    /// Events may have been lost here: subscribers get `event: gap`.
    Gap,
    /// The channel's final event: it is closed after it.
    Final,
}

impl Flag {
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            Flag::Event => "",
            Flag::Gap => "g",
            Flag::Final => "f",
        }
    }

    fn from_field(text: &str) -> Flag {
        match text {
            "g" => Flag::Gap,
            "f" => Flag::Final,
            _ => Flag::Event,
        }
    }
}

/// One entry of a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id, valid on every pod.
    pub id: EventId,
    /// The event name.
    pub event: String,
    /// The data.
    pub data: String,
    /// What it is.
    pub flag: Flag,
}

pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => Some(items),
        _ => None,
    }
}

/// Field pairs, from a flat array (RESP2) or a map (RESP3).
pub(crate) fn fields(value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
            .collect(),
        other => array(other)
            .unwrap_or_default()
            .chunks(2)
            .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
            .collect(),
    }
}

/// A stream entry `[id, [field, value, ...]]` as a history entry of the
/// channel whose epoch is `epoch`.
pub(crate) fn entry(value: &Value, epoch: &str) -> Option<Entry> {
    let parts = array(value)?;
    let id = EventId::from_entry(epoch, &text(parts.first()?)?)?;
    let mut event = String::new();
    let mut data = String::new();
    let mut flag = Flag::Event;
    for (name, value) in fields(parts.get(1)?) {
        match name.as_str() {
            "e" => event = value,
            "d" => data = value,
            "x" => flag = Flag::from_field(&value),
            _ => {}
        }
    }
    Some(Entry {
        id,
        event,
        data,
        flag,
    })
}

/// The entries of an `XRANGE` reply.
pub(crate) fn entries(value: &Value, epoch: &str) -> Vec<Entry> {
    array(value)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| entry(item, epoch))
        .collect()
}
