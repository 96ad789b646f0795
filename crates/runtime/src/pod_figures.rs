//! One pod's figures across the worker processes of a pre-fork host
//! (gunicorn `-w N`): what the pod's `/metrics` reports, whichever of its
//! processes answers.
//!
//! Each process counts its own streams: its shutdown sequence waits for
//! those, and nothing crosses between processes (`fork.rs`). But the pod's
//! probe port is answered by gunicorn's master, which serves no stream,
//! and the app's `/metrics` by whichever worker took the request: each saw
//! a different part of the pod, and the master showed its own internal
//! holds as streams. So the master maps a small shared region before it
//! forks ([`share`]); each worker takes a slot in it ([`join`]) and adds
//! every stream and piece of work it counts to its slot too, with one
//! relaxed atomic add beside the counter's own (a process without a slot
//! pays one load of a null pointer); and every process of the pod renders
//! the sum of the slots as `gs_active_streams`, `gs_active_work`,
//! `gs_streams_started_total` and `gs_streams_finished_total`, so every
//! scrape of the pod agrees, and equals the streams the workers hold.
//!
//! When a worker has exited, the master [`release`]s its slot: the
//! streams it still counted ended with it (they move to finished, so the
//! totals never go down), and a later worker may take the slot, adding to
//! its totals. A slot is written by one live worker at a time.

use crate::error::Error;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// One worker's figures, in the shared region.
#[repr(C)]
#[derive(Default)]
struct Slot {
    /// The worker process that holds it (0: free).
    pid: AtomicU64,
    active_streams: AtomicU64,
    streams_started: AtomicU64,
    streams_finished: AtomicU64,
    active_work: AtomicU64,
}

/// The most slots a region may have: far more workers than a pod runs.
pub const MAX_SLOTS: u32 = 4096;

/// The region's first slot (null: this process shares none).
static REGION: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
/// Its number of slots.
static SLOTS: AtomicUsize = AtomicUsize::new(0);
/// This process's slot (null: none). Cleared in a forked child, which
/// takes its own with [`join`].
static MINE: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

fn slots() -> &'static [Slot] {
    let first = REGION.load(Ordering::Acquire);
    if first.is_null() {
        return &[];
    }
    // SAFETY: `share` published a mapping of `SLOTS` zeroed `Slot`s (all
    // atomics, for which all-zero is a valid value) before the pointer,
    // and it is never unmapped.
    unsafe { std::slice::from_raw_parts(first, SLOTS.load(Ordering::Acquire)) }
}

/// Maps a region of `count` slots shared with every child forked from
/// now on: from here, this process's figures are the pod's (the slots'
/// sum). Once per process ([`Error::AlreadyInstalled`] again);
/// [`Error::InvalidArgument`] for 0 or more than [`MAX_SLOTS`].
pub fn share(count: u32) -> Result<(), Error> {
    if count == 0 || count > MAX_SLOTS {
        return Err(Error::InvalidArgument(
            "the pod's figures need 1 to 4096 slots",
        ));
    }
    if !REGION.load(Ordering::Acquire).is_null() {
        return Err(Error::AlreadyInstalled);
    }
    let bytes = count as usize * std::mem::size_of::<Slot>();
    // SAFETY: an anonymous shared mapping, no file; the result is checked.
    let mapped = unsafe {
        libc::mmap(
            ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(Error::Os(std::io::Error::last_os_error()));
    }
    SLOTS.store(count as usize, Ordering::Release);
    if REGION
        .compare_exchange(
            ptr::null_mut(),
            mapped.cast::<Slot>(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // Another thread shared first: this mapping is not used.
        // SAFETY: mapped above, never published.
        unsafe { libc::munmap(mapped, bytes) };
        return Err(Error::AlreadyInstalled);
    }
    crate::fork::join(crate::fork::ForkHandlers {
        before: || {},
        parent: || {},
        child: || MINE.store(ptr::null_mut(), Ordering::Relaxed),
    });
    Ok(())
}

/// In a child forked after [`share`]: this process's streams and work are
/// added to slot `slot` from now on. [`Error::InvalidArgument`] without a
/// region or for a slot beyond it; a slot another live process holds is
/// the caller's mistake (its figures would mix).
pub fn join(slot: u32) -> Result<(), Error> {
    let Some(taken) = slots().get(slot as usize) else {
        return Err(Error::InvalidArgument(
            "no such slot of the pod's figures (share them before the fork)",
        ));
    };
    taken
        .pid
        .store(u64::from(std::process::id()), Ordering::Relaxed);
    MINE.store(ptr::from_ref(taken).cast_mut(), Ordering::Release);
    Ok(())
}

/// In the process that shared the region, once the worker that held
/// `slot` has exited: the streams and work it still counted ended with it
/// (its streams move to finished), and the slot is free for another.
pub fn release(slot: u32) -> Result<(), Error> {
    let Some(freed) = slots().get(slot as usize) else {
        return Err(Error::InvalidArgument("no such slot of the pod's figures"));
    };
    let left = freed.active_streams.swap(0, Ordering::Relaxed);
    freed.streams_finished.fetch_add(left, Ordering::Relaxed);
    freed.active_work.store(0, Ordering::Relaxed);
    freed.pid.store(0, Ordering::Relaxed);
    Ok(())
}

/// The pod's figures, when this process shares them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodFigures {
    /// Worker processes holding a slot now.
    pub workers: u64,
    pub active_streams: u64,
    pub streams_started: u64,
    pub streams_finished: u64,
    pub active_work: u64,
}

/// The sum of the slots (`None`: this process shares no region).
pub fn totals() -> Option<PodFigures> {
    if REGION.load(Ordering::Acquire).is_null() {
        return None;
    }
    let mut sum = PodFigures::default();
    for slot in slots() {
        if slot.pid.load(Ordering::Relaxed) != 0 {
            sum.workers += 1;
        }
        sum.active_streams += slot.active_streams.load(Ordering::Relaxed);
        sum.streams_started += slot.streams_started.load(Ordering::Relaxed);
        sum.streams_finished += slot.streams_finished.load(Ordering::Relaxed);
        sum.active_work += slot.active_work.load(Ordering::Relaxed);
    }
    Some(sum)
}

/// Whether this process holds a slot.
#[inline]
pub(crate) fn joined() -> bool {
    !MINE.load(Ordering::Relaxed).is_null()
}

/// This process's slot, if it holds one (a load of a null pointer
/// otherwise: the hot path's whole cost outside a pre-fork worker).
#[inline]
fn mine() -> Option<&'static Slot> {
    let slot = MINE.load(Ordering::Relaxed);
    // SAFETY: `join` stored a pointer into the region, which lives as
    // long as the process.
    (!slot.is_null()).then(|| unsafe { &*slot })
}

#[inline]
pub(crate) fn stream_began() {
    if let Some(slot) = mine() {
        slot.streams_started.fetch_add(1, Ordering::Relaxed);
        slot.active_streams.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn stream_ended() {
    if let Some(slot) = mine() {
        slot.active_streams.fetch_sub(1, Ordering::Relaxed);
        slot.streams_finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn work_began() {
    if let Some(slot) = mine() {
        slot.active_work.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn work_ended() {
    if let Some(slot) = mine() {
        slot.active_work.fetch_sub(1, Ordering::Relaxed);
    }
}
