//! What a request to the hub asks for, read from its method, its URI and
//! its headers alone: no hub, no I/O, so that every byte a client controls
//! goes through one function the property tests can drive
//! (`request::tests`, `make fuzz`).
//!
//! `GET /streams/<channel>`: the channel percent-decoded (a client may
//! encode any character, `:` as `%3A`) and then held to the publisher's
//! rule (1 to 200 of `A-Z a-z 0-9 - _ . ~ :`); the token from `?token=`, or
//! from `Authorization: Bearer` (the scheme in any case), which wins; the
//! client's last event id from `?last_event_id=`, or from the
//! `Last-Event-ID` header, which wins (it is what a browser sends when it
//! reconnects). An empty header, an empty bearer or one that is not UTF-8
//! counts as absent; an id holding a line break or a NUL is dropped (it
//! could not be written back in an SSE field).

use hyper::header::{self, HeaderMap};
use hyper::{Method, Uri};

/// The request's ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Not `/streams/<a valid channel>` (404).
    NotFound,
    /// A CORS preflight for a channel (answered by its origin alone).
    Preflight,
    /// Another method than GET or OPTIONS (405).
    WrongMethod,
    /// A subscription, its token still to be verified.
    Subscribe(Subscription),
}

/// A subscription as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) channel: String,
    /// The token as given ("" when there is none: refused as missing).
    pub(crate) token: String,
    /// Where the client resumes from: non-empty, without a line break.
    pub(crate) last_event_id: Option<String>,
}

/// Reads what a request asks for.
pub(crate) fn read(method: &Method, uri: &Uri, headers: &HeaderMap) -> Ask {
    let Some(channel) = uri
        .path()
        .strip_prefix("/streams/")
        .map(percent_decoded)
        .filter(|c| super::check_channel(c).is_ok())
    else {
        return Ask::NotFound;
    };
    if method == Method::OPTIONS {
        return Ask::Preflight;
    }
    if method != Method::GET {
        return Ask::WrongMethod;
    }
    let mut token = None;
    let mut last_event_id = None;
    if let Some(query) = uri.query() {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "token" => token = Some(value.into_owned()),
                "last_event_id" => last_event_id = Some(value.into_owned()),
                _ => {}
            }
        }
    }
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| crate::probes::bearer(v.as_bytes()))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        token = Some(bearer.to_owned());
    }
    // An empty header counts as absent (it replayed everything over the
    // query's id).
    if let Some(header_id) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
    {
        last_event_id = Some(header_id.to_owned());
    }
    Ask::Subscribe(Subscription {
        channel,
        token: token.unwrap_or_default(),
        last_event_id: last_event_id.filter(|id| !id.is_empty() && super::frame::is_field_safe(id)),
    })
}

/// `text` with `%XX` decoded (a malformed escape kept as is); not UTF-8
/// gives a name that no channel has.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[at] == b'%' && at + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[at + 1]), hex(bytes[at + 2])) {
                out.push(u8::try_from(high * 16 + low).unwrap_or(0));
                at += 3;
                continue;
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Property tests: any method, target and headers a client can send are
/// read without a panic, and what is read follows the rules above. 256
/// cases each in `make test` (proptest's default); `make fuzz` sets
/// `PROPTEST_CASES` higher.
#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use proptest::prelude::*;

    const CHANNEL_CHARS: &str = "[A-Za-z0-9._~:-]";

    /// A character as a client may write it in a path: itself, or
    /// percent-encoded in either case.
    fn encoded(c: char, how: u8) -> String {
        match how % 3 {
            0 => c.to_string(),
            1 => format!("%{:02X}", c as u32),
            _ => format!("%{:02x}", c as u32),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&'static str, Vec<u8>)]) -> Option<Ask> {
        let method = Method::from_bytes(method.as_bytes()).ok()?;
        let uri = Uri::try_from(target).ok()?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_bytes(value).ok()?);
        }
        Some(read(&method, &uri, &map))
    }

    fn regex(pattern: &str) -> impl Strategy<Value = String> {
        proptest::string::string_regex(pattern).unwrap()
    }

    fn subscription(ask: Option<Ask>) -> Subscription {
        match ask {
            Some(Ask::Subscribe(subscription)) => subscription,
            other => panic!("expected a subscription, got {other:?}"),
        }
    }

    /// The query as a client would encode it, with other keys around.
    fn query(pairs: &[(&str, &str)]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("x", "1");
        for (key, value) in pairs {
            out.append_pair(key, value);
        }
        out.finish()
    }

    proptest! {
        #[test]
        fn fuzz_any_request_is_read_without_panic_and_within_the_rules(
            method in prop_oneof![
                Just("GET".to_owned()), Just("OPTIONS".to_owned()), Just("POST".to_owned()),
                "[A-Za-z!#$%&'*+.^_`|~-]{1,12}",
            ],
            path in prop_oneof![
                "/streams/[ -~]{0,240}".prop_map(|p| p.replace([' ', '"', '<', '>', '\\', '^', '`', '{', '|', '}', '#', '?'], "%20")),
                "[ -~]{0,80}",
                "/streams/(%[0-9A-Fa-f]{0,2}|[A-Za-z0-9:~._-]){0,60}",
            ],
            query in "[ -~]{0,200}",
            authorization in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
            last_event_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        ) {
            let target = format!("{path}?{query}");
            let mut headers = Vec::new();
            if let Some(value) = authorization {
                headers.push(("authorization", value));
            }
            if let Some(value) = last_event_id {
                headers.push(("last-event-id", value));
            }
            // What hyper would have refused before the hub saw it.
            if let Some(ask) = request(&method, &target, &headers) {
                let uri = Uri::try_from(target.as_str()).unwrap();
                let named = uri.path().strip_prefix("/streams/").map(percent_decoded);
                let valid = named.as_deref().is_some_and(|c| super::super::check_channel(c).is_ok());
                match ask {
                    Ask::NotFound => prop_assert!(!valid),
                    Ask::Preflight => prop_assert!(valid && method == "OPTIONS"),
                    Ask::WrongMethod => prop_assert!(valid && method != "GET" && method != "OPTIONS"),
                    Ask::Subscribe(s) => {
                        prop_assert!(valid && method == "GET");
                        prop_assert_eq!(Some(s.channel), named);
                        if let Some(id) = s.last_event_id {
                            prop_assert!(!id.is_empty() && super::super::frame::is_field_safe(&id));
                        }
                    }
                }
            }
        }

        #[test]
        fn fuzz_every_channel_name_reads_back_however_it_is_encoded(
            name in regex(&format!("{CHANNEL_CHARS}{{1,200}}")),
            how in proptest::collection::vec(any::<u8>(), 200),
        ) {
            let path: String = name.chars().zip(&how).map(|(c, h)| encoded(c, *h)).collect();
            let read = subscription(request("GET", &format!("/streams/{path}"), &[]));
            prop_assert_eq!(read.channel, name);
        }

        #[test]
        fn fuzz_a_name_outside_the_rule_is_not_found(
            name in prop_oneof![
                Just(String::new()),
                regex(&format!("{CHANNEL_CHARS}{{201,260}}")),
                regex(&format!("{CHANNEL_CHARS}{{0,20}}[^A-Za-z0-9._~:-]{CHANNEL_CHARS}{{0,20}}")),
            ],
        ) {
            // Every byte encoded: any name reaches the check as it is.
            let path: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(request("GET", &format!("/streams/{path}"), &[]), Some(Ask::NotFound));
        }

        #[test]
        fn fuzz_the_header_wins_over_the_query_unless_empty(
            query_token in proptest::option::of("[ -~]{0,40}"),
            bearer_scheme in "[Bb][Ee][Aa][Rr][Ee][Rr]",
            // The edge cases as often as the rest: empty, blank.
            bearer in proptest::option::of(prop_oneof![Just(String::new()), " {1,3}", "[ -~]{1,40}"]),
            query_id in proptest::option::of(prop_oneof![Just(String::new()), "[ -~\r\n\u{0}]{1,20}"]),
            header_id in proptest::option::of(prop_oneof![Just(String::new()), "[ -~]{1,20}"]),
        ) {
            let mut pairs = Vec::new();
            if let Some(token) = &query_token {
                pairs.push(("token", token.as_str()));
            }
            if let Some(id) = &query_id {
                pairs.push(("last_event_id", id.as_str()));
            }
            let mut headers = Vec::new();
            if let Some(bearer) = &bearer {
                headers.push(("authorization", format!("{bearer_scheme} {bearer}").into_bytes()));
            }
            if let Some(id) = &header_id {
                headers.push(("last-event-id", id.clone().into_bytes()));
            }
            let target = format!("/streams/c?{}", query(&pairs));
            let read = subscription(request("GET", &target, &headers));
            // The bearer, trimmed, when it says anything; else the query's.
            let expected_token = bearer
                .as_deref()
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .or(query_token)
                .unwrap_or_default();
            prop_assert_eq!(read.token, expected_token);
            // The header when it is not empty; else the query's; kept only
            // when it can be written back as an SSE field.
            let expected_id = header_id
                .filter(|id| !id.is_empty())
                .or(query_id)
                .filter(|id| !id.is_empty() && !id.contains(['\r', '\n', '\0']));
            prop_assert_eq!(read.last_event_id, expected_id);
        }

        #[test]
        fn fuzz_only_get_subscribes_and_options_is_a_preflight(
            method in "[A-Z]{1,10}",
        ) {
            let ask = request(&method, "/streams/c?token=t", &[]).unwrap();
            match method.as_str() {
                "GET" => prop_assert!(matches!(ask, Ask::Subscribe(_))),
                "OPTIONS" => prop_assert_eq!(ask, Ask::Preflight),
                _ => prop_assert_eq!(ask, Ask::WrongMethod),
            }
        }
    }

    #[test]
    fn an_empty_or_blank_bearer_leaves_the_query_token() {
        for bearer in ["Bearer ", "Bearer    ", "bEaReR \t"] {
            let read = subscription(request(
                "GET",
                "/streams/c?token=abc",
                &[("authorization", bearer.as_bytes().to_vec())],
            ));
            assert_eq!(read.token, "abc", "{bearer:?}");
        }
    }

    #[test]
    fn a_bearer_that_is_not_utf8_counts_as_absent() {
        let read = subscription(request(
            "GET",
            "/streams/c?token=abc",
            &[("authorization", b"Bearer \xff\xfe".to_vec())],
        ));
        assert_eq!(read.token, "abc");
    }
}
