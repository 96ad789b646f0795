//! The store's writes and reads of channel histories: appending events
//! (one script call each, pipelined on one connection) and resuming from
//! an id (one script call).

use crate::connection::{is_connection_error, Conn, Target, RESPONSE_TIMEOUT};
use crate::ids::{fresh_epoch, EventId};
use crate::keys::ChannelKeys;
use crate::tls::StoreTls;
use crate::url::{StoreConfigError, StoreUrl, STREAM_STORE};
use crate::values::{self, Entry, Flag};
use redis::{RedisError, RedisResult, Script, Value};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::Mutex;

/// The bounds of every channel's history in Redis, and of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events kept per channel.
    pub history_len: usize,
    /// How long an event is kept.
    pub history_age: Duration,
    /// Bytes of events (event name and data, plus 32 per event) kept per
    /// channel.
    pub history_bytes: usize,
    /// A channel's keys expire this long after the history's age
    /// (`history_age + idle`) past its last event.
    pub idle: Duration,
    /// Entries kept (at least) in each bucket's log: how far a pod's
    /// reader may fall behind before it loses its place.
    pub log_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            history_len: 100,
            history_age: Duration::from_secs(300),
            history_bytes: 1 << 20,
            idle: Duration::from_secs(600),
            log_len: 10_000,
        }
    }
}

/// A channel's kind, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any pod can serve it.
    Resumable,
    /// Its publisher runs on one pod.
    PodBound,
}

impl Kind {
    fn as_arg(self) -> &'static str {
        match self {
            Kind::Resumable => "r",
            Kind::PodBound => "p",
        }
    }

    fn from_field(text: &str) -> Option<Kind> {
        match text {
            "r" => Some(Kind::Resumable),
            "p" => Some(Kind::PodBound),
            _ => None,
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// The channel.
    pub channel: String,
    /// Its kind from now on.
    pub kind: Kind,
    /// The event name.
    pub event: String,
    /// The data.
    pub data: String,
    /// What the entry is.
    pub flag: Flag,
}

/// What became of one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// In the history (and the bucket's log) with this id.
    Added(EventId),
    /// Refused: the channel was closed (with this final event's id).
    Closed(EventId),
}

/// How a resume went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeStatus {
    /// No id was given: the whole history.
    All,
    /// The id is in the history: the events after it, nothing missed.
    After,
    /// The id is not (another epoch, trimmed, lost, malformed, or the
    /// channel is unknown): events may have been missed; the whole history
    /// follows a gap.
    Gap,
}

/// What a subscriber resuming from an id gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The channel's current epoch (`None`: no such channel).
    pub epoch: Option<String>,
    /// See [`ResumeStatus`].
    pub status: ResumeStatus,
    /// The events to replay, oldest first (with the final event last when
    /// the channel is closed and it is still in the history).
    pub entries: Vec<Entry>,
    /// The final event, when the channel is closed (also in `entries` if
    /// the history still holds it).
    pub closed: Option<Entry>,
    /// The channel's kind, when known.
    pub kind: Option<Kind>,
}

fn append_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("scripts/append.lua")))
}

fn resume_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("scripts/resume.lua")))
}

pub(crate) fn generation_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("scripts/generation.lua")))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn protocol(what: &str) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected reply from the store's script",
        what.to_owned(),
    ))
}

/// The shared store on Redis: where channels' histories live, so that an
/// event published on any pod reaches the subscribers of every pod, and a
/// subscriber resumes on any pod.
pub struct RedisStore {
    target: Target,
    limits: Limits,
    /// The connection commands share, made on first use and again after it
    /// breaks.
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.target.is_cluster())
            .field("limits", &self.limits)
            .finish()
    }
}

impl RedisStore {
    /// A store for `url` (`None` for `memory:`), TLS with the system's
    /// roots. Connects on first use: an unreachable server is not an error
    /// here.
    pub fn new(url: &StoreUrl, limits: Limits) -> Result<Option<RedisStore>, StoreConfigError> {
        RedisStore::with_tls(url, &StoreTls::default(), limits)
    }

    /// A store for `url` with TLS's files (read and checked now: a missing
    /// or malformed one is an error naming its variable).
    pub fn with_tls(
        url: &StoreUrl,
        tls: &StoreTls,
        limits: Limits,
    ) -> Result<Option<RedisStore>, StoreConfigError> {
        let certs = tls.certificates(url)?;
        let target = Target::new(url, certs).map_err(|error| StoreConfigError {
            variable: STREAM_STORE,
            value: url.redacted(),
            reason: error.to_string(),
        })?;
        Ok(target.map(|target| RedisStore {
            target,
            limits,
            conn: Mutex::new(None),
        }))
    }

    /// The bounds it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The shared connection, connecting if there is none.
    async fn conn(&self) -> RedisResult<Conn> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.target.connect(RESPONSE_TIMEOUT).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the shared connection after `error` if it is broken, so that
    /// the next call connects again.
    async fn forget_if_broken(&self, error: &RedisError) {
        if is_connection_error(error) {
            *self.conn.lock().await = None;
        }
    }

    /// Checks that the store answers (connecting if needed).
    pub async fn ping(&self) -> RedisResult<()> {
        let mut conn = self.conn().await?;
        let result: RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if let Err(error) = &result {
            self.forget_if_broken(error).await;
        }
        result.map(drop)
    }

    /// Appends `items` in order: one script call each, sent together on
    /// one connection (one round trip for the batch). Entries of one
    /// channel keep their order. An error means the connection failed: some
    /// of the batch may have been appended, and the caller must treat the
    /// whole batch as possibly lost (and say so with a gap entry once the
    /// store is back).
    pub async fn append(&self, items: &[Append]) -> RedisResult<Vec<Appended>> {
        let result = self.append_on(items).await;
        if let Err(error) = &result {
            self.forget_if_broken(error).await;
        }
        result
    }

    async fn append_on(&self, items: &[Append]) -> RedisResult<Vec<Appended>> {
        let conn = self.conn().await?;
        let limits = self.limits;
        // One script call per channel, with that channel's entries in
        // order: order within a channel never depends on how the calls are
        // scheduled (or retried after a NOSCRIPT). The calls go together on
        // the multiplexed connection: one round trip for the batch.
        let mut channels: Vec<(&str, Vec<usize>)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match channels.iter_mut().find(|(name, _)| *name == item.channel) {
                Some((_, indices)) => indices.push(index),
                None => channels.push((&item.channel, vec![index])),
            }
        }
        let calls = channels.iter().map(|(channel, indices)| {
            let mut conn = conn.clone();
            let keys = ChannelKeys::of(channel);
            // The kind of the channel's last entry in the batch.
            let kind = indices.last().map_or(Kind::Resumable, |&i| items[i].kind);
            let mut invocation = append_script().prepare_invoke();
            invocation
                .key(&keys.stream)
                .key(&keys.meta)
                .key(&keys.log)
                .arg(*channel)
                .arg(kind.as_arg())
                .arg(limits.history_len)
                .arg(millis(limits.history_age))
                .arg(limits.history_bytes)
                .arg(millis(limits.history_age.saturating_add(limits.idle)))
                .arg(limits.log_len.max(1))
                .arg(fresh_epoch());
            for &index in indices {
                let item = &items[index];
                invocation
                    .arg(&item.event)
                    .arg(&item.data)
                    .arg(item.flag.as_arg());
            }
            async move {
                let reply: Value = invocation.invoke_async(&mut conn).await?;
                parse_appended(&reply, indices.len())
            }
        });
        let replies = futures_util::future::join_all(calls).await;
        let mut results: Vec<Option<Appended>> = vec![None; items.len()];
        for ((_, indices), reply) in channels.iter().zip(replies) {
            for (&index, appended) in indices.iter().zip(reply?) {
                results[index] = Some(appended);
            }
        }
        results
            .into_iter()
            .map(|result| result.ok_or_else(|| protocol("append: an entry has no reply")))
            .collect()
    }

    /// What a subscriber of `channel` arriving with `last_event_id` (as the
    /// client sent it; `None` when it sent none) gets from the history, in
    /// one round trip. A malformed or unknown id is a [`ResumeStatus::Gap`].
    pub async fn resume(&self, channel: &str, last_event_id: Option<&str>) -> RedisResult<Resume> {
        let result = self.resume_on(channel, last_event_id).await;
        if let Err(error) = &result {
            self.forget_if_broken(error).await;
        }
        result
    }

    async fn resume_on(&self, channel: &str, last_event_id: Option<&str>) -> RedisResult<Resume> {
        let mut conn = self.conn().await?;
        let keys = ChannelKeys::of(channel);
        // An id that does not parse cannot be in any history; asking for
        // an epoch no channel has gets the whole history after a gap.
        let (epoch, entry) = match last_event_id {
            None => (String::new(), String::new()),
            Some(text) => match EventId::parse(text) {
                Some(id) => (id.epoch.clone(), id.entry()),
                None => ("-".into(), "0-0".into()),
            },
        };
        let mut invocation = resume_script().prepare_invoke();
        invocation
            .key(&keys.stream)
            .key(&keys.meta)
            .arg(epoch)
            .arg(entry)
            .arg(self.limits.history_len.saturating_add(1));
        let reply: Value = invocation.invoke_async(&mut conn).await?;
        parse_resume(&reply)
    }
}

fn parse_appended(reply: &Value, count: usize) -> RedisResult<Vec<Appended>> {
    let parts = values::array(reply).ok_or_else(|| protocol("append: not an array"))?;
    let epoch = parts
        .first()
        .and_then(values::text)
        .ok_or_else(|| protocol("append: no epoch"))?;
    if parts.len() != 1 + 2 * count {
        return Err(protocol("append: wrong number of replies"));
    }
    parts[1..]
        .chunks(2)
        .map(|pair| {
            let entry = values::text(&pair[0]).unwrap_or_default();
            let id =
                EventId::from_entry(&epoch, &entry).ok_or_else(|| protocol("append: bad id"))?;
            match values::text(&pair[1]).as_deref() {
                Some("ok") => Ok(Appended::Added(id)),
                Some("closed") => Ok(Appended::Closed(id)),
                _ => Err(protocol("append: bad status")),
            }
        })
        .collect()
}

fn parse_resume(reply: &Value) -> RedisResult<Resume> {
    let parts = values::array(reply).ok_or_else(|| protocol("resume: not an array"))?;
    let text = |index: usize| parts.get(index).and_then(values::text).unwrap_or_default();
    let epoch = text(0);
    let status = match text(1).as_str() {
        "all" => ResumeStatus::All,
        "after" => ResumeStatus::After,
        "gap" => ResumeStatus::Gap,
        other => return Err(protocol(&format!("resume: status {other}"))),
    };
    let entries = parts
        .get(2)
        .map(|value| values::entries(value, &epoch))
        .unwrap_or_default();
    let closed = Some(text(3))
        .filter(|id| !id.is_empty())
        .and_then(|id| EventId::from_entry(&epoch, &id))
        .map(|id| Entry {
            id,
            event: text(4),
            data: text(5),
            flag: Flag::Final,
        });
    Ok(Resume {
        epoch: Some(epoch).filter(|e| !e.is_empty()),
        status,
        entries,
        closed,
        kind: Kind::from_field(&text(6)),
    })
}
