//! Following the bucket logs: how a pod learns of every event published on
//! any pod, in order, once.
//!
//! A reader holds a blocking connection of its own (`XREAD BLOCK` would
//! hold up anything else sent on it) and a position in each of its
//! buckets' logs. It never skips silently: it reports a bucket as
//! [`LogItem::Lost`] when it cannot be sure it saw every entry since its
//! position:
//!
//! * after reconnecting, if the server's generation changed (it restarted
//!   or failed over: what this pod had not read may be gone), or if its
//!   position is no longer in the log;
//! * after a full batch (it may be falling behind), if the log was trimmed
//!   past its position.
//!
//! The hub then tells the subscribers of that bucket's channels `gap`.

use crate::connection::{Conn, Target};
use crate::ids::EventId;
use crate::keys::{log_key, BUCKETS};
use crate::store::generation_script;
use crate::values::{self, Entry, Flag};
use redis::{RedisResult, Value};
use std::time::Duration;

/// An entry of a bucket log: an event of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The channel's bucket.
    pub bucket: u32,
    /// The channel.
    pub channel: String,
    /// The event, with its id in the channel.
    pub entry: Entry,
}

/// What a read of the logs gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// The next event of a channel.
    Entry(LogEntry),
    /// Entries of this bucket may have been missed: its channels'
    /// subscribers must be told `gap`. Reading goes on from the log's end.
    Lost(u32),
}

struct Place {
    bucket: u32,
    key: String,
    /// The id of the last entry read (`None` before the first connection).
    position: Option<String>,
    /// The server's generation when last connected.
    generation: Option<String>,
    /// Check that `position` is still in the log before the next read.
    check: bool,
}

/// Follows some of the bucket logs (all of them for a single server; one
/// per reader for a cluster, whose logs are on different nodes).
pub struct LogReader {
    target: Target,
    places: Vec<Place>,
    conn: Option<Conn>,
    block: Duration,
    count: usize,
}

impl LogReader {
    pub(crate) fn new(
        target: Target,
        buckets: Vec<u32>,
        block: Duration,
        count: usize,
    ) -> LogReader {
        LogReader {
            target,
            places: buckets
                .into_iter()
                .map(|bucket| Place {
                    bucket,
                    key: log_key(bucket),
                    position: None,
                    generation: None,
                    check: false,
                })
                .collect(),
            conn: None,
            block,
            count: count.max(1),
        }
    }

    /// The buckets it follows.
    pub fn buckets(&self) -> Vec<u32> {
        self.places.iter().map(|place| place.bucket).collect()
    }

    /// Starts following from the logs' ends now (connecting), so that a
    /// subscriber registered after this returns sees every later event.
    /// Not needed before [`LogReader::next`], which does it on its first
    /// call; an error leaves it to be done then.
    pub async fn start(&mut self) -> RedisResult<()> {
        self.ensure_connected().await.map(drop)
    }

    /// The next entries (waiting at most the block time: an empty result
    /// is no news). An error means the connection failed; the next call
    /// connects again and reports any bucket whose continuity it cannot
    /// vouch for.
    pub async fn next(&mut self) -> RedisResult<Vec<LogItem>> {
        let result = self.read().await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn read(&mut self) -> RedisResult<Vec<LogItem>> {
        let mut items = self.ensure_connected().await?;
        let mut conn = self.conn.clone().expect("connected above");
        for at in 0..self.places.len() {
            if self.places[at].check {
                self.places[at].check = false;
                if !still_there(&mut conn, &self.places[at]).await? {
                    items.push(LogItem::Lost(self.places[at].bucket));
                    self.places[at].position =
                        Some(log_end(&mut conn, &self.places[at].key).await?);
                }
            }
        }
        if !items.is_empty() {
            return Ok(items);
        }
        let mut command = redis::cmd("XREAD");
        command
            .arg("BLOCK")
            .arg(u64::try_from(self.block.as_millis()).unwrap_or(u64::MAX))
            .arg("COUNT")
            .arg(self.count)
            .arg("STREAMS");
        for place in &self.places {
            command.arg(&place.key);
        }
        for place in &self.places {
            command.arg(place.position.as_deref().unwrap_or("$"));
        }
        let reply: Value = command.query_async(&mut conn).await?;
        if self.target.is_cluster() {
            // A cluster connection follows a failover by itself, without an
            // error: ask each node's generation after every read, and
            // report a change before the entries read from the new node.
            for place in &mut self.places {
                let mut invocation = generation_script().prepare_invoke();
                invocation.key(&place.key);
                let generation: String = invocation.invoke_async(&mut conn).await?;
                if place.generation.as_deref() != Some(generation.as_str()) {
                    items.push(LogItem::Lost(place.bucket));
                    place.generation = Some(generation);
                }
            }
        }
        for (key, entries) in streams(&reply) {
            let Some(at) = self.places.iter().position(|p| p.key == key) else {
                continue;
            };
            let read = values::array(entries).unwrap_or_default();
            if read.len() >= self.count {
                self.places[at].check = true;
            }
            for raw in read {
                let Some(parts) = values::array(raw) else {
                    continue;
                };
                if let Some(id) = parts.first().and_then(values::text) {
                    self.places[at].position = Some(id);
                }
                if let Some(entry) = parts
                    .get(1)
                    .and_then(|f| log_entry(self.places[at].bucket, f))
                {
                    items.push(LogItem::Entry(entry));
                }
            }
        }
        Ok(items)
    }

    /// Connects if needed; on a reconnection, the buckets whose continuity
    /// is lost.
    async fn ensure_connected(&mut self) -> RedisResult<Vec<LogItem>> {
        if self.conn.is_some() {
            return Ok(Vec::new());
        }
        let response = self.block.saturating_add(Duration::from_secs(2));
        let mut conn = self.target.connect(response).await?;
        let mut lost = Vec::new();
        for place in &mut self.places {
            let mut invocation = generation_script().prepare_invoke();
            invocation.key(&place.key);
            let generation: String = invocation.invoke_async(&mut conn).await?;
            let continuous = match (&place.position, &place.generation) {
                (Some(_), Some(before)) if *before == generation => {
                    still_there(&mut conn, place).await?
                }
                (None, _) => true,
                _ => false,
            };
            if !continuous {
                lost.push(LogItem::Lost(place.bucket));
            }
            if !continuous || place.position.is_none() {
                place.position = Some(log_end(&mut conn, &place.key).await?);
            }
            place.generation = Some(generation);
            place.check = false;
        }
        self.conn = Some(conn);
        Ok(lost)
    }
}

/// `true` if the place's position is still in its log (or the log was
/// empty then and still has nothing before it).
async fn still_there(conn: &mut Conn, place: &Place) -> RedisResult<bool> {
    let Some(position) = place.position.as_deref() else {
        return Ok(true);
    };
    if position == "0-0" {
        // Nothing was there when it started: continuous if nothing has been
        // trimmed since, i.e. the log's first entry is still its first.
        let reply: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&place.key)
            .query_async(conn)
            .await
            .unwrap_or(Value::Nil);
        let trimmed = values::fields(&reply)
            .into_iter()
            .find(|(name, _)| name == "max-deleted-entry-id")
            .is_some_and(|(_, id)| id != "0-0");
        return Ok(!trimmed);
    }
    let reply: Value = redis::cmd("XRANGE")
        .arg(&place.key)
        .arg(position)
        .arg(position)
        .query_async(conn)
        .await?;
    Ok(values::array(&reply).is_some_and(|entries| !entries.is_empty()))
}

/// The id of the log's last entry (`0-0` when it is empty).
async fn log_end(conn: &mut Conn, key: &str) -> RedisResult<String> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(values::array(&reply)
        .and_then(|entries| entries.first())
        .and_then(values::array)
        .and_then(|parts| parts.first())
        .and_then(values::text)
        .unwrap_or_else(|| "0-0".into()))
}

/// `(key, entries)` of an `XREAD` reply (RESP2 array or RESP3 map; nil when
/// the block time passed).
fn streams(reply: &Value) -> Vec<(String, &Value)> {
    match reply {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(key, entries)| Some((values::text(key)?, entries)))
            .collect(),
        other => values::array(other)
            .unwrap_or_default()
            .iter()
            .filter_map(|pair| {
                let parts = values::array(pair)?;
                Some((values::text(parts.first()?)?, parts.get(1)?))
            })
            .collect(),
    }
}

fn log_entry(bucket: u32, fields: &Value) -> Option<LogEntry> {
    let mut channel = None;
    let mut epoch = None;
    let mut entry = None;
    let mut event = String::new();
    let mut data = String::new();
    let mut flag = Flag::Event;
    for (name, value) in values::fields(fields) {
        match name.as_str() {
            "c" => channel = Some(value),
            "p" => epoch = Some(value),
            "i" => entry = Some(value),
            "e" => event = value,
            "d" => data = value,
            "x" => {
                flag = match value.as_str() {
                    "g" => Flag::Gap,
                    "f" => Flag::Final,
                    _ => Flag::Event,
                }
            }
            _ => {}
        }
    }
    Some(LogEntry {
        bucket,
        channel: channel?,
        entry: Entry {
            id: EventId::from_entry(&epoch?, &entry?)?,
            event,
            data,
            flag,
        },
    })
}

impl crate::store::RedisStore {
    /// Readers that together follow every bucket log: one for a single
    /// server, one per bucket for a cluster (each log lives on the node of
    /// its bucket, and a blocking read goes to one node). Each waits at most
    /// `block` per read and returns at most `count` entries per log.
    pub fn log_readers(&self, block: Duration, count: usize) -> Vec<LogReader> {
        let target = self.target().clone();
        if target.is_cluster() {
            (0..BUCKETS)
                .map(|bucket| LogReader::new(target.clone(), vec![bucket], block, count))
                .collect()
        } else {
            vec![LogReader::new(target, (0..BUCKETS).collect(), block, count)]
        }
    }
}
