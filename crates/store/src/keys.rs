//! Where a channel's data lives in Redis.
//!
//! Every channel belongs to one of [`BUCKETS`] buckets (a hash of its
//! name); the bucket is the Redis Cluster hash tag of all its keys, so
//! that one script can touch a channel's stream, its metadata and its
//! bucket's log together (a script's keys must share a slot), and a pod
//! follows every channel by reading [`BUCKETS`] logs:
//!
//! ```text
//! gs:{b07}:c:<channel>   the channel's history (a stream, bounded)
//! gs:{b07}:m:<channel>   its metadata (a hash: epoch, bytes, closed, kind)
//! gs:{b07}:log           every event of the bucket's channels, in order
//!                        (a stream, short: what pods follow)
//! ```
//!
//! The number of buckets is part of the layout: every pod of a deployment
//! must agree on it, so it is a constant, not a setting.

/// How many buckets (and bucket logs) there are.
pub const BUCKETS: u32 = 16;

/// The bucket of `channel`: FNV-1a of its name, modulo [`BUCKETS`].
pub fn bucket(channel: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in channel.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % BUCKETS
}

/// The keys of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelKeys {
    /// The channel's bucket.
    pub bucket: u32,
    /// Its history stream.
    pub stream: String,
    /// Its metadata hash.
    pub meta: String,
    /// Its bucket's log.
    pub log: String,
}

impl ChannelKeys {
    /// The keys of `channel`.
    pub fn of(channel: &str) -> ChannelKeys {
        let bucket = bucket(channel);
        ChannelKeys {
            bucket,
            stream: format!("gs:{{b{bucket:02}}}:c:{channel}"),
            meta: format!("gs:{{b{bucket:02}}}:m:{channel}"),
            log: log_key(bucket),
        }
    }
}

/// The log of `bucket`.
pub fn log_key(bucket: u32) -> String {
    format!("gs:{{b{bucket:02}}}:log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_keys_share_their_bucket_tag() {
        let keys = ChannelKeys::of("task:42");
        let tag = format!("{{b{:02}}}", keys.bucket);
        for key in [&keys.stream, &keys.meta, &keys.log] {
            assert!(key.contains(&tag), "{key}");
        }
        assert_eq!(keys, ChannelKeys::of("task:42"));
    }

    #[test]
    fn channels_spread_over_every_bucket() {
        let mut seen = [0u32; BUCKETS as usize];
        for n in 0..16_000 {
            seen[bucket(&format!("task:{n}")) as usize] += 1;
        }
        assert!(
            seen.iter().all(|&count| (700..1300).contains(&count)),
            "{seen:?}"
        );
    }
}
