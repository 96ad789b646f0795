//! The host's exit gate across fork(): a parent that has said it is exiting
//! (its interpreter finalizes, say) may fork a child that goes on serving;
//! the child's runtime must call its code again.

mod common;

use last_call::{Phase, Runtime};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_child_forked_after_the_host_said_it_is_exiting_is_called_again() {
    common::require_process_per_test();
    let runtime = Runtime::global();
    runtime.host_exiting(Some(Duration::from_secs(5))).unwrap();
    let code = common::in_forked_child(Duration::from_secs(30), || {
        let runtime = Runtime::global();
        let (heard, heard_rx) = mpsc::channel();
        if runtime
            .on_phase(move |change| {
                let _ = heard.send(change.to);
            })
            .is_err()
            || runtime.set_draining(true).is_err()
        {
            10
        } else {
            match heard_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Phase::Draining) => 0,
                Ok(_) => 11,
                Err(_) => 12, // the gate stayed shut: the listener was never called
            }
        }
    });
    assert_eq!(code, 0, "10: refused, 11: wrong phase, 12: never called");
}
