//! A hostile client for the listeners' tests: a flood of connections that
//! never send a request (or send it one byte at a time), topped up as the
//! server closes them, and a kubelet-like probe (a new connection, the
//! whole request at once) that must be answered through it.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections held open on one address by a thread of its own, at most
/// `held` at once: the oldest is replaced by a new one, again and again,
/// as an attacker re-opens what the server drops. One in ten sends the
/// start of a request and then nothing (slow headers). Stopped and its
/// sockets closed when dropped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    /// Connections opened so far.
    pub opened: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    /// Opens `held` connections (returns once they are open, or once
    /// connecting fails) and keeps topping them up.
    pub fn start(addr: SocketAddr, held: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (ready, filled) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            let opened = Arc::clone(&opened);
            std::thread::spawn(move || {
                let mut open = VecDeque::with_capacity(held);
                let mut ready = Some(ready);
                // Bounded: at most 3 x `held` connections in all (each
                // closed one holds a port in TIME_WAIT for a minute).
                for n in 0..held * 3 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if open.len() >= held {
                        open.pop_front();
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    else {
                        continue;
                    };
                    if n % 10 == 0 {
                        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
                    }
                    opened.fetch_add(1, Ordering::Relaxed);
                    open.push_back(stream);
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                // Hold what is open until told to stop (bounded).
                for _ in 0..600 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let _ = filled.recv_timeout(Duration::from_secs(60));
        Flood {
            stop,
            opened,
            thread: Some(thread),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the kubelet does: a new connection, the whole request at once, the
/// answer read within `within`. The status, or what went wrong.
pub fn probe(addr: SocketAddr, path: &str, within: Duration) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, within).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(within))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]) {
            Ok(0) => return Err(format!("closed after {got} bytes")),
            Ok(n) => got += n,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&head[..got]);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
}
