// src/main.rs
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::{routing::get, Router};
use futures_util::{stream, StreamExt};
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
    let ticks = stream::iter(0..5).then(|n| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, Infallible>(Event::default().id(n.to_string()).data(format!("tick {n}")))
    });
    Sse::new(ticks).tracked(StreamKind::Resumable) // counted; at shutdown, told to reconnect
}
