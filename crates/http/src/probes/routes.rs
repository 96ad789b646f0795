//! The probe answers: the same bodies and status codes as the example
//! servers' HTTP contract (`docs/examples.md`), computed from the runtime alone.

use super::heartbeat::Liveness;
use super::readiness;
use crate::phase::Phase;
use crate::runtime::{lock, Runtime};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use std::time::Duration;

/// What the routes need besides the runtime.
pub(crate) struct Settings {
    pub(crate) drain_token: Option<String>,
    pub(crate) heartbeat_stale_after: Duration,
}

pub(crate) type Answer = Response<Full<Bytes>>;

/// A plain-text answer; a line, like the example servers' own routes.
fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Answers one request. Request bodies are never read: no route needs one.
pub(crate) async fn answer<B>(
    runtime: &Runtime,
    settings: &Settings,
    request: Request<B>,
) -> Answer {
    let method = request.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match request.uri().path() {
        "/readyz" if get => readyz(runtime).await,
        "/healthz" if get => healthz(runtime, settings, &request),
        "/metrics" if get => metrics(runtime, &request),
        "/drain" if method == Method::POST => drain(runtime, settings, &request),
        "/readyz" | "/healthz" | "/metrics" | "/drain" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn readyz(runtime: &Runtime) -> Answer {
    if runtime.phase() != Phase::Serving {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    let checks = lock(&runtime.http.state).readiness_checks.clone();
    let report = readiness::run_all(runtime, checks).await;
    // The phase may have moved while the checks ran.
    if runtime.phase() != Phase::Serving {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if report.ready() {
        text(StatusCode::OK, "ok")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", report.failures.join(", ")),
        )
    }
}

/// Liveness. The stream hub's shared store is reported, never judged: a
/// store that is away degrades streams to this pod, and restarting the pod
/// would not bring it back (every pod would restart at once).
fn healthz<B>(runtime: &Runtime, settings: &Settings, request: &Request<B>) -> Answer {
    let (status, word) = match runtime
        .http
        .heartbeat
        .liveness(settings.heartbeat_stale_after)
    {
        Liveness::NeverBeat | Liveness::Fresh => (StatusCode::OK, "alive".to_owned()),
        Liveness::Stale(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale: no heartbeat for {:.1} s", age.as_secs_f64()),
        ),
    };
    let store = runtime.hub_store_health();
    if wants_json(request) {
        let store = match store {
            None => "null".to_owned(),
            Some(None) => r#"{"state":"ok"}"#.to_owned(),
            Some(Some(away)) => format!(
                r#"{{"state":"degraded","degraded_seconds":{:.3}}}"#,
                away.as_secs_f64()
            ),
        };
        let body = format!(
            r#"{{"status":{},"stream_store":{store}}}"#,
            crate::hub::json_string(&word)
        );
        let mut response = text(status, body);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return response;
    }
    match store {
        Some(Some(away)) => text(
            status,
            format!(
                "{word} (stream store degraded for {:.1} s)",
                away.as_secs_f64()
            ),
        ),
        _ => text(status, word),
    }
}

fn wants_json<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/json"))
}

fn metrics<B>(runtime: &Runtime, request: &Request<B>) -> Answer {
    let mut response = if wants_json(request) {
        let mut response = text(StatusCode::OK, crate::metrics::render_json(runtime));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    } else {
        let mut response = text(StatusCode::OK, crate::metrics::render_prometheus(runtime));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The credentials of `Authorization: Bearer <token>`, the scheme in any
/// case (RFC 9110, 11.1).
pub(crate) fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
}

fn drain<B>(runtime: &Runtime, settings: &Settings, request: &Request<B>) -> Answer {
    let Some(expected) = settings.drain_token.as_deref() else {
        return text(
            StatusCode::FORBIDDEN,
            "the drain endpoint is disabled: set GS_DRAIN_TOKEN",
        );
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()))
        .unwrap_or_default();
    if !constant_time_eq::constant_time_eq(given, expected.as_bytes()) {
        let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drain\""),
        );
        return response;
    }
    let _ = runtime.set_draining(true);
    crate::log::warn!("draining on request to the probe listener's /drain");
    text(StatusCode::OK, "draining")
}
