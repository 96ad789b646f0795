//! The hub's writer threads (`GS_STREAM_THREADS`): each runs a
//! single-threaded tokio runtime of its own, which answers the connections
//! placed on it and writes their streams, so that a fan-out is written by
//! every core the process may use instead of one.
//!
//! Each writer thread accepts connections itself (`accept.rs`); those the
//! accepting thread takes while every writer is busy are handed to the one
//! serving the fewest, as plain sockets through its queue (one wake for all
//! those handed together), and registered with its event loop once, there.
//! The probe listener has a thread of its own.
//!
//! A thread is woken through its own queue, one hand-over per burst: for a
//! channel, the thread wakes its own subscribers of it (one `Notify` per
//! channel and thread, where a wake costs no system call); for a phase
//! change, every stream it serves. A task woken from another thread would
//! cost a write to that thread's eventfd per task: 10,000 system calls to
//! wake 10,000 subscribers.

use super::channel::Channel;
use crate::connections::Slot;
use crate::log::warn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// What a writer thread is woken for.
pub(crate) enum Wake {
    /// Its subscribers of this channel have events to read.
    Channel(Arc<Channel>),
    /// The runtime's phase changed: every stream it serves looks.
    Phase,
}

/// A connection handed to a writer thread, to be served there.
pub(crate) struct Handed {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) slot: Arc<Slot>,
    pub(crate) placed: Placed,
    /// Counted in [`Writers::in_transit`] until the writer takes it.
    pub(crate) _in_transit: InTransit,
}

/// One connection on its way to a writer thread; uncounted when dropped.
pub(crate) struct InTransit(Arc<Writers>);

impl Drop for InTransit {
    fn drop(&mut self) {
        self.0.in_transit.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One writer thread.
pub(crate) struct Writer {
    /// Connections it serves now (answered, or streams).
    load: AtomicUsize,
    wakes: mpsc::UnboundedSender<Wake>,
    pub(crate) connections: mpsc::UnboundedSender<Handed>,
    /// Every stream it serves waits on it for a phase change.
    pub(crate) phase_changed: Arc<Notify>,
}

/// The writer threads.
pub(crate) struct Writers {
    threads: Box<[Writer]>,
    /// Connections handed over and not yet taken by their writer thread
    /// (each holds a descriptor that nothing else bounds: a connection
    /// still on its way has no task to stop when it is shed).
    in_transit: AtomicUsize,
}

/// What a writer thread runs (it spawns its task on the thread's event
/// loop): the connections handed to it.
pub(crate) type Serve = Box<dyn FnOnce(mpsc::UnboundedReceiver<Handed>) + Send>;

impl Writers {
    /// Starts `count` writer threads (`last-call-hub-w0`, ...); on each,
    /// `serve(n)` is spawned with the connections handed to thread `n`. A
    /// thread ends when the `Writers` are dropped (a hub that failed to
    /// start).
    pub(crate) fn start(
        count: usize,
        mut serve: impl FnMut(usize) -> Serve,
    ) -> std::io::Result<Writers> {
        let mut threads = Vec::with_capacity(count);
        // Each thread says when its `serve` has run: what it spawns (the
        // tasks a Stopping must find to abort) exists when this returns.
        let (served, ready) = std::sync::mpsc::channel::<()>();
        for index in 0..count {
            let tokio = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (wakes, receiver) = mpsc::unbounded_channel();
            let (connections, handed) = mpsc::unbounded_channel();
            let phase_changed = Arc::new(Notify::new());
            let writer = Writer {
                load: AtomicUsize::new(0),
                wakes,
                connections,
                phase_changed: Arc::clone(&phase_changed),
            };
            let serve = serve(index);
            let served = served.clone();
            // Signals are the host's threads' to take, from the thread's
            // first instruction.
            last_call_runtime::spawn_without_signals(
                std::thread::Builder::new().name(format!("last-call-hub-w{index}")),
                move || {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        {
                            let _entered = tokio.enter();
                            serve(handed);
                        }
                        let _ = served.send(());
                        tokio.block_on(wake_loop(receiver, index, phase_changed));
                    }));
                    if result.is_err() {
                        warn!("a writer thread of the stream hub failed; please report this");
                    }
                },
            )?;
            threads.push(writer);
        }
        drop(served);
        // Bounded: every thread sends once, or ends (its sender dropped).
        for _ in 0..count {
            if ready.recv().is_err() {
                break;
            }
        }
        Ok(Writers {
            threads: threads.into(),
            in_transit: AtomicUsize::new(0),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.threads.len()
    }

    /// The connections each thread serves now.
    pub(crate) fn loads(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|writer| writer.load.load(Ordering::Relaxed))
            .collect()
    }

    pub(crate) fn get(&self, index: usize) -> &Writer {
        &self.threads[index]
    }

    /// Hands `stream` to the thread serving the fewest connections (a
    /// connection's life is long, so placing by count spreads the streams
    /// evenly however they come and go), counted there until its `Placed`
    /// is dropped.
    pub(crate) fn hand(self: &Arc<Self>, stream: std::net::TcpStream, slot: Arc<Slot>) {
        let placed = self.place();
        let index = placed.index;
        self.in_transit.fetch_add(1, Ordering::Relaxed);
        let _ = self.threads[index].connections.send(Handed {
            stream,
            slot,
            placed,
            _in_transit: InTransit(Arc::clone(self)),
        });
    }

    /// Connections handed over that their writer threads have not taken
    /// yet.
    pub(crate) fn in_transit(&self) -> usize {
        self.in_transit.load(Ordering::Relaxed)
    }

    pub(crate) fn place(self: &Arc<Self>) -> Placed {
        // A thread that ended (none is expected to: a panic caught on it)
        // serves nothing and counts nothing down: passed over, or it would
        // take every connection, at a load that no longer moves.
        let index = self
            .threads
            .iter()
            .enumerate()
            .min_by_key(|(_, writer)| {
                (
                    writer.connections.is_closed(),
                    writer.load.load(Ordering::Relaxed),
                )
            })
            .map_or(0, |(index, _)| index);
        self.place_on(index)
    }

    /// A connection served by writer `index` (the one that accepted it),
    /// counted there until the guard is dropped.
    pub(crate) fn place_on(self: &Arc<Self>, index: usize) -> Placed {
        self.threads[index].load.fetch_add(1, Ordering::Relaxed);
        Placed {
            writers: Arc::clone(self),
            index,
        }
    }

    /// Hands `channel` to writer `index`, which wakes its subscribers of it,
    /// unless a hand-over is on its way already.
    pub(crate) fn wake(&self, index: usize, channel: &Arc<Channel>) {
        // AcqRel, paired with the wake loop's swap: when this swap finds
        // the flag set, the loop's clearing swap comes later in the flag's
        // order and synchronizes with this one, so what was appended before
        // it is seen by the subscribers the loop then wakes.
        if !channel.side(index).pending.swap(true, Ordering::AcqRel) {
            let _ = self.threads[index]
                .wakes
                .send(Wake::Channel(Arc::clone(channel)));
        }
    }

    /// Every stream looks at the phase again, on its own thread.
    pub(crate) fn phase_changed(&self) {
        for writer in self.threads.iter() {
            let _ = writer.wakes.send(Wake::Phase);
        }
    }
}

/// A connection counted on its writer thread until dropped.
pub(crate) struct Placed {
    writers: Arc<Writers>,
    /// The thread's index.
    pub(crate) index: usize,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.writers.threads[self.index]
            .load
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// On writer thread `index`: what other threads hand it, until the hub is
/// gone.
async fn wake_loop(
    mut wakes: mpsc::UnboundedReceiver<Wake>,
    index: usize,
    phase_changed: Arc<Notify>,
) {
    while let Some(wake) = wakes.recv().await {
        match wake {
            Wake::Channel(channel) => {
                let side = channel.side(index);
                // Cleared before waking: a publish after this point hands
                // the channel over again. A swap (not a store), so that it
                // acquires what the publishes that found the flag set had
                // appended.
                side.pending.swap(false, Ordering::AcqRel);
                side.notify.notify_waiters();
            }
            Wake::Phase => phase_changed.notify_waiters(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_pass_over_a_writer_thread_that_ended() {
        // Writer 0's connections end with its serving (as on a panic
        // caught on the thread); writer 1 serves.
        let writers = Arc::new(
            Writers::start(2, |index| {
                Box::new(move |handed| {
                    if index == 1 {
                        tokio::spawn(async move {
                            let _handed = handed;
                            std::future::pending::<()>().await
                        });
                    }
                })
            })
            .unwrap(),
        );
        let ended = std::time::Instant::now() + Duration::from_secs(10);
        while !writers.get(0).connections.is_closed() && std::time::Instant::now() < ended {
            std::thread::sleep(Duration::from_millis(1));
        }
        let placed: Vec<_> = (0..6).map(|_| writers.place()).collect();
        assert!(placed.iter().all(|placed| placed.index == 1));
    }

    #[test]
    fn connections_on_their_way_to_a_writer_thread_are_counted_until_it_takes_them() {
        // The bound the sweep keeps (accept.rs) reads this count: a writer
        // that does not take what it is handed holds them in the count.
        let (take, taken) = std::sync::mpsc::channel::<()>();
        let taken = std::sync::Mutex::new(Some(taken));
        let writers = Arc::new(
            Writers::start(1, |_| {
                let taken = taken.lock().unwrap().take().unwrap();
                Box::new(move |mut handed| {
                    tokio::spawn(async move {
                        // Takes nothing until told.
                        tokio::task::spawn_blocking(move || taken.recv()).await.ok();
                        while handed.recv().await.is_some() {}
                    });
                })
            })
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = crate::connections::Connections::new(100);
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (stream, _) = listener.accept().unwrap();
            writers.hand(stream, Arc::new(connections.admit().unwrap()));
        }
        assert_eq!(writers.in_transit(), 5);
        take.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while writers.in_transit() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(writers.in_transit(), 0);
    }
}
