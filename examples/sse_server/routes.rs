//! The example-server HTTP contract (docs/examples.md), on axum.

use crate::tasks::{Published, Refused, Tasks};
use async_stream::stream;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use last_call::axum::SseExt;
use last_call::{metrics, Runtime, StreamKind};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;

/// Told to clients refused while draining or full: by then another pod is
/// ready, or finished tasks have been forgotten.
const RETRY_AFTER_SECONDS: u64 = 2;
pub const MAX_STEPS: u64 = 1_000;
pub const MAX_STEP_SECONDS: f64 = 60.0;

#[derive(Clone)]
pub struct AppState {
    pub runtime: &'static Runtime,
    pub tasks: Tasks,
    pub drain_token: Option<String>,
    pub heartbeat: Duration,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/tasks", post(start_task))
        .route("/api/tasks/{id}/stream", get(stream_task))
        .route("/api/events", get(stream_feed))
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .route("/drain", post(drain))
        .route("/metrics", get(metrics_endpoint))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn unavailable(message: &str) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

/// `{"steps": int 1..=MAX_STEPS, "step_seconds": number 0..=60}`, as the
/// Flask app checks it (a bool is not a number there either). serde_json
/// refuses nesting deeper than 128, so pathological JSON is a 400 too.
fn parse_task(body: &[u8]) -> Result<(u64, Duration), String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        "the body must be a JSON object: {\"steps\": int, \"step_seconds\": float}".to_owned()
    })?;
    let object = value
        .as_object()
        .ok_or("the body must be a JSON object: {\"steps\": int, \"step_seconds\": float}")?;
    let steps = object
        .get("steps")
        .and_then(Value::as_u64)
        .filter(|s| (1..=MAX_STEPS).contains(s))
        .ok_or(format!("steps must be an integer from 1 to {MAX_STEPS}"))?;
    let step_seconds = object
        .get("step_seconds")
        .filter(|v| v.is_number())
        .and_then(Value::as_f64)
        .filter(|s| (0.0..=MAX_STEP_SECONDS).contains(s))
        .ok_or(format!(
            "step_seconds must be a number from 0 to {MAX_STEP_SECONDS}"
        ))?;
    Ok((steps, Duration::from_secs_f64(step_seconds)))
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

async fn start_task(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // Read (within the limit) before answering: closing a socket with an
    // unread request in it resets the connection, and the client could lose
    // the answer.
    let Ok(body) = to_bytes(body, state.max_body).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body must be at most {} bytes", state.max_body),
        );
    };
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be sent as Content-Type: application/json",
        );
    }
    let (steps, step) = match parse_task(&body) {
        Ok(task) => task,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if state.runtime.is_draining() {
        return unavailable("the server is draining; start the task on another instance");
    }
    let task = match state.tasks.start(steps, step) {
        Ok(task) => task,
        Err(Refused::Full) => return unavailable("too many tasks are held; retry later"),
        Err(Refused::ShutDown) => return unavailable("the server is shutting down"),
    };
    let stream_url = format!("/api/tasks/{}/stream", task.id);
    (
        StatusCode::ACCEPTED,
        Json(json!({"task_id": task.id, "stream_url": stream_url})),
    )
        .into_response()
}

/// The `Last-Event-ID` a reconnecting EventSource sends; 0 (from the start)
/// when absent or not a number.
fn last_event_id(headers: &HeaderMap) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn task_event(event: &Published) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event("task_event")
        .data(&*event.json)
}

/// An SSE response of `kind`: counted while it is open, ended by its kind
/// at shutdown (`last_call::axum`), with heartbeats.
fn sse_response<S>(events: S, heartbeat: Duration, kind: StreamKind) -> Response
where
    S: futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .tracked(kind)
        .into_response()
}

/// A task's stream: pod-bound (only this process has the task). Replays the
/// events after `Last-Event-ID`, then follows the task to its final event.
/// At the streams' last moment the task is cancelled (see `main.rs`), so
/// the final event is `task_failed` with reason `shutdown`: never a
/// reconnect hint, which would send the client to a pod that has no such
/// task.
async fn stream_task(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(task) = state.tasks.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no task {id}"));
    };
    let mut published = task.subscribe();
    let mut next = last_event_id(&headers).saturating_add(1);
    let events = stream! {
        loop {
            while let Some(event) = task.event(next) {
                next += 1;
                yield Ok::<Event, Infallible>(task_event(&event));
                if event.final_event {
                    if event.by_shutdown {
                        // The pod-bound stream's final event, for the
                        // shutdown log's count.
                        Runtime::global().stream_ending_sent(StreamKind::PodBound);
                    }
                    return;
                }
            }
            if published.changed().await.is_err() {
                return;
            }
        }
    };
    sse_response(events, state.heartbeat, StreamKind::PodBound)
}

/// Every task event of this pod: resumable (a reconnect starts afresh on
/// whichever pod it reaches). At ClosingStreams each stream is told to
/// reconnect at its own moment of the close notice (the reconnect spread),
/// with `retry:` and the last event's `id:` (`last_call::axum`).
async fn stream_feed(State(state): State<AppState>) -> Response {
    let mut feed = state.tasks.feed();
    let events = stream! {
        loop {
            match feed.recv().await {
                Ok(event) => yield Ok::<Event, Infallible>(task_event(&event)),
                // A slow reader skips what it missed: a live view.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    sse_response(events, state.heartbeat, StreamKind::Resumable)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.runtime.is_draining() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        text(StatusCode::OK, "ok")
    }
}

async fn healthz() -> Response {
    text(StatusCode::OK, "alive")
}

async fn drain(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.drain_token.as_deref() else {
        return text(
            StatusCode::FORBIDDEN,
            "the drain endpoint is disabled: set GS_DRAIN_TOKEN",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or("");
    if !constant_time_eq::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"drain\""),
        );
        return response;
    }
    // Cannot fail: entering Draining is always allowed.
    let _ = state.runtime.set_draining(true);
    text(StatusCode::OK, "draining")
}

async fn metrics_endpoint(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // JSON only when asked for it explicitly (Prometheus sends text/plain).
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") && !accept.contains("text/plain") {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            metrics::render_json(state.runtime),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render_prometheus(state.runtime),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_task;

    #[test]
    fn task_input_is_checked_like_the_flask_app() {
        assert!(parse_task(br#"{"steps": 3, "step_seconds": 0.5}"#).is_ok());
        assert!(parse_task(br#"{"steps": 3, "step_seconds": 0}"#).is_ok());
        for bad in [
            &b"{not json"[..],
            br#"[]"#,
            br#"{"steps": "3", "step_seconds": 1}"#,
            br#"{"steps": 0, "step_seconds": 1}"#,
            br#"{"steps": true, "step_seconds": 1}"#,
            br#"{"steps": 3, "step_seconds": -1}"#,
            br#"{"steps": 3, "step_seconds": true}"#,
            br#"{"steps": 3}"#,
            br#"{"steps": 2.5, "step_seconds": 1}"#,
            br#"{"steps": 1001, "step_seconds": 1}"#,
        ] {
            assert!(parse_task(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_task(deep.as_bytes()).is_err());
    }
}
