// src/main.rs
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::{routing::get, Router};
use futures_util::stream;
use last_call::axum::SseExt;
use last_call::tokio::RuntimeExt;
use last_call::{install_signal_handlers, Config, Runtime, StreamKind};
use std::{convert::Infallible, time::Duration};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    install_signal_handlers(Config::from_env()?)?; // SIGTERM starts the sequence
    let runtime = Runtime::global();
    runtime.start_probes_from_env()?; // GS_PROBE_ADDR: /readyz /healthz /metrics
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("serving on http://{}", listener.local_addr()?);
    let app = Router::new().route("/events", get(events));
    axum::serve(listener, app)
        .with_graceful_shutdown(runtime.shutdown_signal()) // streams done: stop
        .await?;
    Ok(())
}

async fn events() -> impl IntoResponse {
    let ticks = stream::unfold(0, |n| async move {
        if n == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let event = Event::default().id(n.to_string()).data(format!("tick {n}"));
        Some((Ok::<_, Infallible>(event), n + 1))
    });
    // Counted while open; at shutdown, told to reconnect at its own moment.
    Sse::new(ticks).tracked(StreamKind::Resumable)
}
