//! How the hub takes its connections: each writer thread accepts from the
//! one listening socket itself, so that a subscription is answered by the
//! thread that accepted it, with no hand-over between threads on the way
//! (each hand-over was a thread to wake per connection, and the set-up of
//! thousands at once waited on it). The socket is in every writer thread's
//! event loop; whichever is free takes the next connection.
//!
//! The accepting thread (the listener's own) sweeps the socket beside them,
//! within 50 ms and then every 5 ms while it finds connections waiting (at
//! most 64 a sweep, and none while 1,024 handed over are not yet taken):
//! when every writer thread is busy (a fan-out saturating them),
//! connections are still accepted, admitted under the cap (or answered
//! 503), and handed to the writer serving the fewest, instead of waiting in
//! the kernel's queue until it overflows.

use super::server::serve_connection;
use super::writers::Placed;
use super::Hub;
use crate::listener::accept_nonblocking;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How often the accepting thread looks for connections the writers have
/// not taken: every 5 ms while it finds some, backing off to every 50 ms
/// while it finds none (an idle hub wakes 20 times a second for it).
const SWEEP_EVERY: Duration = Duration::from_millis(5);
const SWEEP_IDLE: Duration = Duration::from_millis(50);
/// Connections one sweep takes at most: under a flood it gives the
/// accepting thread's other work (the dispatcher, the shared store) its
/// turn between two sweeps.
const SWEEP_AT_MOST: usize = 64;
/// Connections on their way to the writer threads at most: past it, the
/// sweep leaves the rest in the kernel's accept queue (bounded by the
/// backlog), rather than holding descriptors that busy writers would take
/// only later (the connection cap cannot shed one still on its way).
const IN_TRANSIT_AT_MOST: usize = 1024;

/// The listening socket, shared by the writer threads' event loops and the
/// sweep; closed when the last of them lets go (the hub stopping).
#[derive(Clone)]
pub(crate) struct Listening(pub(crate) Arc<std::net::TcpListener>);

impl AsRawFd for Listening {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// On writer thread `index`: accepts what it can while it is free, and
/// serves it here. Waits for the hub to be made (nothing is accepted
/// before).
pub(crate) async fn on_writer(listening: Listening, made: Arc<OnceLock<Arc<Hub>>>, index: usize) {
    // SAFETY: `Listening` holds the socket (an `Arc`) for as long as the
    // `AsyncFd` lives, so its descriptor stays open and the same.
    let registered = unsafe { AsyncFd::register_with_interest(listening, Interest::READABLE) };
    let Ok(listener) = registered else {
        crate::log::warn!("a writer thread of the stream hub cannot accept; the others do");
        return;
    };
    loop {
        let Ok(mut ready) = listener.readable().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(hub) = made.get() else {
            // Not made yet: the sweep takes what comes meanwhile.
            ready.clear_ready();
            tokio::time::sleep(SWEEP_EVERY).await;
            continue;
        };
        match accept_nonblocking(&listener.get_ref().0) {
            Ok(stream) => take(hub, stream, Some(index)),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => ready.clear_ready(),
            Err(_) => {
                // Out of file descriptors, or the like: back off briefly
                // instead of spinning.
                drop(ready);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // One connection at a time: the streams it serves get their turn
        // between two, and the other writers take the rest.
        tokio::task::yield_now().await;
    }
}

/// On the accepting thread: takes every connection waiting, now and then
/// (see [`SWEEP_EVERY`]), and hands each to the writer serving the fewest.
pub(crate) async fn sweep(listening: Listening, hub: Arc<Hub>) {
    let mut every = SWEEP_IDLE;
    loop {
        tokio::time::sleep(every).await;
        let mut found = false;
        for _ in 0..SWEEP_AT_MOST {
            if hub.writers.in_transit() >= IN_TRANSIT_AT_MOST {
                break;
            }
            match accept_nonblocking(&listening.0) {
                Ok(stream) => {
                    found = true;
                    take(&hub, stream, None);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        every = if found {
            SWEEP_EVERY
        } else {
            (every * 2).min(SWEEP_IDLE)
        };
    }
}

/// A connection accepted: admitted under the cap and served on writer
/// `here` (the one that accepted it), or handed to the writer serving the
/// fewest; at the cap, answered 503 (a few at a time) or closed.
fn take(hub: &Arc<Hub>, stream: std::net::TcpStream, here: Option<usize>) {
    let _ = stream.set_nodelay(true);
    let Some(slot) = hub.connections.admit() else {
        // Every connection a stream or being answered: a short answer, a
        // few at a time; past that, the connection is just closed.
        if let Ok(permit) = Arc::clone(&hub.refusing).try_acquire_owned() {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                tokio::spawn(async move {
                    super::server::refuse_at_capacity(stream).await;
                    drop(permit);
                });
            }
        }
        return;
    };
    let slot = Arc::new(slot);
    match here {
        Some(index) => {
            let placed: Placed = hub.writers.place_on(index);
            serve_connection(hub, stream, slot, placed);
        }
        None => hub.writers.hand(stream, slot),
    }
}
