//! loom model of the handshake between the delivery thread and a thread
//! that removes a phase listener (`src/delivery.rs`), with no lock held
//! across the call:
//!
//! * a listener removed before its delivery starts is never called;
//! * once the removal returns, the listener is not running and is never
//!   called again;
//! * the remover never sleeps forever (loom reports a lost wake-up as a
//!   deadlock).
//!
//! Run with `make loom` (part of `make test`).
#![cfg(loom)]

use last_call_core::delivery::{DeliverySlot, RemovedFlag};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const LISTENER: u64 = 7;

struct World {
    slot: DeliverySlot,
    removed: RemovedFlag,
    removal_returned: AtomicBool,
    calls: AtomicUsize,
}

/// The delivery thread's side: one delivery of the listener.
fn deliver(world: &World) {
    if world.slot.begin(LISTENER, &world.removed) {
        // The call: it must never overlap a returned removal.
        assert!(!world.removal_returned.load(Ordering::SeqCst));
        world.calls.fetch_add(1, Ordering::SeqCst);
        assert!(!world.removal_returned.load(Ordering::SeqCst));
        world.slot.finish();
    }
}

/// A remover outside any listener.
fn remove(world: &World) {
    world.removed.set();
    world.slot.wait_until_idle(LISTENER);
    world.removal_returned.store(true, Ordering::SeqCst);
}

fn world() -> Arc<World> {
    Arc::new(World {
        slot: DeliverySlot::new(),
        removed: RemovedFlag::new(),
        removal_returned: AtomicBool::new(false),
        calls: AtomicUsize::new(0),
    })
}

#[test]
fn a_returned_removal_is_never_followed_or_overlapped_by_a_call() {
    loom::model(|| {
        let world = world();
        let delivery = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                deliver(&world);
                deliver(&world);
            })
        };
        remove(&world);
        delivery.join().unwrap();
        assert!(world.calls.load(Ordering::SeqCst) <= 2);
    });
}

#[test]
fn a_listener_removed_before_its_delivery_is_never_called() {
    loom::model(|| {
        let world = world();
        remove(&world);
        let delivery = {
            let world = Arc::clone(&world);
            thread::spawn(move || deliver(&world))
        };
        delivery.join().unwrap();
        assert_eq!(world.calls.load(Ordering::SeqCst), 0);
    });
}
