//! The stream hub as a server of its own, for `benches/peers.py`, which
//! runs it beside nchan and Pushpin and drives all three with the same
//! client (`examples/peers_client.rs`).
//!
//! The hub itself comes from the environment (`GS_STREAM_ADDR`,
//! `GS_STREAM_SECRET`, `GS_STREAM_THREADS`, ...). Beside it, on a port of
//! its own (`--publish-addr`, default a free port of 127.0.0.1), what an app
//! would be: a small HTTP server on one thread that publishes what it is
//! sent, as nchan's publisher location and Pushpin's publish API do:
//!
//! * `POST /pub/<channel>`: the body is the event's data, published with
//!   `hub_publish` (event `message`, or the `X-EventSource-Event` header);
//!   answers 200 with the event's id;
//! * `GET /token/<channel>`: a subscription token for the channel (an
//!   hour).
//!
//! Prints `streams on http://ADDR` (the hub) and `publish on http://ADDR`,
//! then serves until it is killed.
//!
//! ```text
//! GS_STREAM_ADDR=127.0.0.1:0 GS_STREAM_SECRET=... target/release/examples/hub_peer
//! ```

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use last_call::{Runtime, StreamKind};
use std::convert::Infallible;
use std::time::Duration;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let runtime = Runtime::global();
    let path = request.uri().path().to_owned();
    if let (&Method::POST, Some(channel)) = (request.method(), path.strip_prefix("/pub/")) {
        let channel = channel.to_owned();
        let event = request
            .headers()
            .get("x-eventsource-event")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("message")
            .to_owned();
        let Ok(body) = request.into_body().collect().await else {
            return Ok(answer(StatusCode::BAD_REQUEST, "unreadable body\n"));
        };
        let Ok(data) = String::from_utf8(body.to_bytes().to_vec()) else {
            return Ok(answer(StatusCode::BAD_REQUEST, "not UTF-8\n"));
        };
        return Ok(
            match runtime.hub_publish(&channel, &event, &data, None, StreamKind::Resumable) {
                Ok(id) => answer(StatusCode::OK, id),
                Err(error) => answer(StatusCode::BAD_REQUEST, format!("{error}\n")),
            },
        );
    }
    if let (&Method::GET, Some(channel)) = (request.method(), path.strip_prefix("/token/")) {
        return Ok(
            match runtime.hub_subscribe_token(channel, Duration::from_secs(3600)) {
                Ok(token) => answer(StatusCode::OK, token),
                Err(error) => answer(StatusCode::BAD_REQUEST, format!("{error}\n")),
            },
        );
    }
    Ok(answer(
        StatusCode::NOT_FOUND,
        "POST /pub/<channel> or GET /token/<channel>\n",
    ))
}

fn main() {
    let mut publish_addr = "127.0.0.1:0".to_owned();
    // lexopt: `--publish-addr ADDR` or `--publish-addr=ADDR`, its errors
    // named.
    let mut parser = lexopt::Parser::from_env();
    let read = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("publish-addr") => publish_addr = parser.value()?.string()?,
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(error) = read {
        eprintln!("hub_peer: {error}\nusage: hub_peer [--publish-addr 127.0.0.1:0]");
        std::process::exit(2);
    }
    let runtime = Runtime::global();
    match runtime.start_hub_from_env() {
        Ok(Some(_)) => {}
        Ok(None) => {
            eprintln!("hub_peer: set GS_STREAM_ADDR");
            std::process::exit(2);
        }
        Err(error) => {
            eprintln!("hub_peer: {error}");
            std::process::exit(2);
        }
    }
    // The app: one thread, as a small web app's publishing path would be.
    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    app.block_on(async {
        let listener = tokio::net::TcpListener::bind(&publish_addr)
            .await
            .unwrap_or_else(|e| panic!("hub_peer: cannot listen on {publish_addr}: {e}"));
        println!(
            "publish on http://{}",
            listener.local_addr().expect("bound")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
}
