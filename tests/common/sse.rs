//! A Server-Sent Events client for the tests: hyper's HTTP/1 client on a
//! tokio runtime, each event (the text between blank lines) handed over
//! as it arrives. Dropping a stream closes its connection.

use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// What arrives on a stream: an event's text, or its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    Event(String),
    End,
}

pub struct SseStream {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub arrivals: Receiver<(std::time::Instant, Arrival)>,
    task: tokio::task::JoinHandle<()>,
    /// The body's error, if it ended in one (a cut), rather than cleanly.
    cut: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl SseStream {
    /// Why the body was cut, if it ended in an error (read after its end).
    pub fn cut(&self) -> Option<String> {
        self.cut.lock().unwrap().clone()
    }

    /// The next event or end, within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Arrival> {
        self.arrivals.recv_timeout(timeout).ok().map(|(_, a)| a)
    }

    /// The next event that is not a comment (heartbeats are skipped).
    pub fn next_event(&self, timeout: Duration) -> Option<Arrival> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next(left)? {
                Arrival::Event(text) if text.lines().all(|l| l.starts_with(':')) => continue,
                other => return Some(other),
            }
        }
    }

    /// Every arrival until the end (bounded by `timeout` in all).
    pub fn until_end(&self, timeout: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next(left) {
                Some(Arrival::Event(text)) => events.push(text),
                Some(Arrival::End) => return events,
                None => panic!("the stream did not end within {timeout:?}; got {events:?}"),
            }
        }
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of the answer, when it is not a stream.
pub fn body_text(stream: &SseStream) -> String {
    stream.until_end(Duration::from_secs(10)).join("\n\n")
}

/// Opens `path` on `addr` with `headers`, on `runtime`.
pub fn open(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> SseStream {
    let mut builder = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", "hub");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let (head_sender, head) = mpsc::channel();
    let (sender, arrivals) = mpsc::channel();
    let cut = std::sync::Arc::new(std::sync::Mutex::new(None));
    let cut_by = std::sync::Arc::clone(&cut);
    let task = runtime.spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut client, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let response = client.send_request(request).await.unwrap();
        let (parts, mut body) = response.into_parts();
        let _ = head_sender.send((parts.status.as_u16(), parts.headers));
        let mut text = String::new();
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    *cut_by.lock().unwrap() = Some(error.to_string());
                    break;
                }
            };
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
                while let Some(at) = text.find("\n\n") {
                    let event: String = text.drain(..at + 2).collect();
                    let event = event.trim_end_matches('\n').to_owned();
                    let _ = sender.send((std::time::Instant::now(), Arrival::Event(event)));
                }
            }
        }
        if !text.is_empty() {
            let _ = sender.send((std::time::Instant::now(), Arrival::Event(text)));
        }
        let _ = sender.send((std::time::Instant::now(), Arrival::End));
        connection.abort();
    });
    let (status, headers) = head
        .recv_timeout(Duration::from_secs(10))
        .expect("response headers within 10 s");
    SseStream {
        status,
        headers,
        arrivals,
        task,
        cut,
    }
}
