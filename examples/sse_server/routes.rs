//! The example-server HTTP contract (see the README), on axum.

use crate::tasks::{Tasks, FINAL_EVENTS};
use async_stream::stream;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use last_call::{metrics, Phase, Runtime};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;

/// Told to clients refused while draining: by then another pod is ready.
const RETRY_AFTER_SECONDS: u64 = 2;
/// How long browsers wait before reconnecting after the reconnect event.
const RECONNECT_RETRY: Duration = Duration::from_millis(1000);
const MAX_STEPS: u64 = 10_000;
const MAX_STEP_SECONDS: f64 = 60.0;

#[derive(Clone)]
pub struct AppState {
    pub runtime: &'static Runtime,
    pub tasks: Tasks,
    /// The phase, as the runtime's phase listener last reported it.
    pub phase: watch::Receiver<Phase>,
    pub drain_token: Option<String>,
    pub heartbeat: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/tasks", post(start_task))
        .route("/api/tasks/{id}/stream", get(stream_task))
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .route("/drain", post(drain))
        .route("/metrics", get(metrics_endpoint))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

/// `{"steps": int 1..=10000, "step_seconds": number 0..=60}`, as the Flask
/// app checks it (a bool is not a number there either).
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

async fn start_task(State(state): State<AppState>, body: Bytes) -> Response {
    let (steps, step) = match parse_task(&body) {
        Ok(task) => task,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if state.runtime.is_draining() {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is draining; start the task on another instance",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        return response;
    }
    let task = state.tasks.start(steps, step);
    let stream_url = format!("/api/tasks/{}/stream", task.id);
    (
        StatusCode::ACCEPTED,
        Json(json!({"task_id": task.id, "stream_url": stream_url})),
    )
        .into_response()
}

async fn stream_task(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(task) = state.tasks.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no task {id}"));
    };
    // Counted from here until the body is dropped: at its end, or as soon
    // as hyper notices the client has gone (the next write fails).
    let guard = match state.runtime.begin_stream() {
        Ok(guard) => guard,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut published = task.subscribe();
    let mut phase = state.phase.clone();
    let events = stream! {
        let _guard = guard;
        let mut next = 0;
        loop {
            while let Some(event) = task.event(next) {
                next += 1;
                let last = FINAL_EVENTS.contains(&event["event_type"].as_str().unwrap_or(""));
                yield Ok::<Event, Infallible>(Event::default().event("task_event").data(event.to_string()));
                if last {
                    return;
                }
            }
            if *phase.borrow() >= Phase::ClosingStreams {
                yield Ok(Event::default()
                    .retry(RECONNECT_RETRY)
                    .event("reconnect")
                    .data(json!({"reason": "server shutting down", "retry_ms": RECONNECT_RETRY.as_millis()}).to_string()));
                return;
            }
            tokio::select! {
                changed = published.changed() => if changed.is_err() { return },
                _ = phase.wait_for(|p| *p >= Phase::ClosingStreams) => {}
            }
        }
    };
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.heartbeat).text("heartbeat"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
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
        ] {
            assert!(parse_task(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
