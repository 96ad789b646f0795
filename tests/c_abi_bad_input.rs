//! Bad input through the C ABI, each answered with its documented status.
//! The functions are called as C would call them (the same `extern "C"`
//! symbols the cdylib exports). Each test runs in its own process under
//! cargo-nextest, so the process-wide runtime starts fresh in each.

mod common;

use last_call::ffi::*;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;

fn last_error() -> String {
    let mut buffer = [0 as c_char; 256];
    let mut length = 0usize;
    // SAFETY: the buffer holds 256 bytes; `length` is writable.
    let status = unsafe { gs_last_error_message(buffer.as_mut_ptr(), buffer.len(), &mut length) };
    assert_eq!(status, gs_status::GS_OK);
    // SAFETY: gs_last_error_message NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn decrement_without_increment_is_reported_and_never_wraps() {
    common::require_process_per_test();
    assert_eq!(
        gs_decrement_active_streams(),
        gs_status::GS_ERR_NO_ACTIVE_STREAM
    );
    assert_eq!(gs_active_streams(), 0);
    assert!(
        last_error().contains("without a matching begin"),
        "{}",
        last_error()
    );
    assert_eq!(gs_increment_active_streams(), gs_status::GS_OK);
    assert_eq!(gs_decrement_active_streams(), gs_status::GS_OK);
    assert_eq!(
        gs_decrement_active_streams(),
        gs_status::GS_ERR_NO_ACTIVE_STREAM
    );
    assert_eq!(gs_active_streams(), 0);
    assert_eq!(gs_streams_started_total(), 1);
    assert_eq!(gs_streams_finished_total(), 1);
}

#[test]
fn timeouts_nan_and_negative_are_errors_infinite_is_no_limit() {
    common::require_process_per_test();
    assert_eq!(
        gs_wait_for_streams(f64::NAN),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        gs_wait_for_streams(-1.0),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        gs_wait_for_streams(f64::NEG_INFINITY),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("timeout"));
    // Nothing active: an infinite wait returns at once.
    assert_eq!(gs_wait_for_streams(f64::INFINITY), gs_status::GS_OK);
    assert_eq!(gs_increment_active_streams(), gs_status::GS_OK);
    assert_eq!(gs_wait_for_streams(0.0), gs_status::GS_TIMED_OUT);
    assert_eq!(gs_wait_for_streams(0.05), gs_status::GS_TIMED_OUT);
    let ender = std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        gs_decrement_active_streams()
    });
    assert_eq!(gs_wait_for_streams(f64::INFINITY), gs_status::GS_OK);
    assert_eq!(ender.join().unwrap(), gs_status::GS_OK);
    assert_eq!(
        gs_wait_for_phase(GS_PHASE_STOPPED_U32, f64::NAN),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        gs_wait_for_phase(GS_PHASE_STOPPED_U32, 0.01),
        gs_status::GS_TIMED_OUT
    );
    assert_eq!(gs_wait_for_phase(0, 0.0), gs_status::GS_OK);
}

const GS_PHASE_STOPPED_U32: u32 = gs_phase::GS_PHASE_STOPPED as u32;

#[test]
fn values_outside_an_enum_are_invalid_arguments() {
    common::require_process_per_test();
    assert_eq!(
        gs_wait_for_phase(5, 1.0),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        gs_wait_for_phase(u32::MAX, 1.0),
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    let mut buffer = [0 as c_char; 64];
    // SAFETY: valid buffer of the stated length.
    let status =
        unsafe { gs_render_metrics(7, buffer.as_mut_ptr(), buffer.len(), ptr::null_mut()) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_ARGUMENT);
    // SAFETY: gs_status_message returns a static string for any value.
    let unknown = unsafe { CStr::from_ptr(gs_status_message(999)) };
    assert_eq!(unknown.to_str().unwrap(), "unknown status");
}

#[test]
fn set_draining_false_is_refused_once_the_sequence_has_started() {
    common::require_process_per_test();
    assert_eq!(gs_set_draining(1), gs_status::GS_OK);
    assert!(gs_is_draining());
    assert_eq!(gs_current_phase(), gs_phase::GS_PHASE_DRAINING);
    assert_eq!(gs_set_draining(0), gs_status::GS_OK);
    assert_eq!(gs_current_phase(), gs_phase::GS_PHASE_SERVING);

    // Without installed handlers, gs_begin_shutdown takes its timings from
    // the environment: no drain delay, so the sequence ends with the stream.
    std::env::set_var("GS_DRAIN_DELAY_SECONDS", "0");
    assert_eq!(gs_increment_active_streams(), gs_status::GS_OK);
    assert_eq!(gs_begin_shutdown(), gs_status::GS_OK);
    assert_eq!(gs_set_draining(0), gs_status::GS_ERR_SEQUENCE_STARTED);
    assert!(last_error().contains("sequence has started"));
    assert_eq!(gs_current_phase(), gs_phase::GS_PHASE_DRAINING);
    assert_eq!(gs_decrement_active_streams(), gs_status::GS_OK);
    assert_eq!(
        gs_wait_for_phase(GS_PHASE_STOPPED_U32, 10.0),
        gs_status::GS_OK
    );
    // Past Draining, both directions are answered without moving the phase.
    assert_eq!(gs_set_draining(0), gs_status::GS_ERR_SEQUENCE_STARTED);
    assert_eq!(gs_set_draining(1), gs_status::GS_OK);
    assert_eq!(gs_current_phase(), gs_phase::GS_PHASE_STOPPED);
    // A second begin never runs a second sequence.
    assert_eq!(gs_begin_shutdown(), gs_status::GS_OK);
    assert_eq!(gs_current_phase(), gs_phase::GS_PHASE_STOPPED);
}

#[test]
fn null_pointers_are_rejected() {
    common::require_process_per_test();
    // SAFETY: NULL is the bad input under test; each function checks it.
    unsafe {
        assert_eq!(
            gs_config_from_env(ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_on_phase(None, ptr::null_mut(), ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_register_shutdown_hook(ptr::null(), Some(hook), ptr::null_mut(), ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_register_shutdown_hook(c"name".as_ptr(), None, ptr::null_mut(), ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_render_metrics(0, ptr::null_mut(), 16, ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            gs_last_error_message(ptr::null_mut(), 8, ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
    }
    assert_eq!(gs_remove_phase_callback(12345), gs_status::GS_ERR_NOT_FOUND);
    assert_eq!(gs_remove_shutdown_hook(12345), gs_status::GS_ERR_NOT_FOUND);
}

unsafe extern "C" fn hook(_remaining: f64, _user_data: *mut c_void) -> u8 {
    1
}

#[test]
fn a_small_buffer_gets_a_truncated_text_and_the_needed_size() {
    common::require_process_per_test();
    let mut needed = 0usize;
    // SAFETY: length 0 with a NULL buffer asks for the size only.
    let status = unsafe { gs_render_metrics(0, ptr::null_mut(), 0, &mut needed) };
    assert_eq!(status, gs_status::GS_ERR_BUFFER_TOO_SMALL);
    assert!(needed > 100);
    let mut small = [0 as c_char; 16];
    let mut written = 0usize;
    // SAFETY: valid buffer of the stated length.
    let status = unsafe { gs_render_metrics(0, small.as_mut_ptr(), small.len(), &mut written) };
    assert_eq!(status, gs_status::GS_ERR_BUFFER_TOO_SMALL);
    assert_eq!(written, needed);
    // SAFETY: NUL-terminated within the buffer.
    let truncated = unsafe { CStr::from_ptr(small.as_ptr()) };
    assert_eq!(truncated.to_bytes().len(), 15);
    let mut big = vec![0 as c_char; needed + 1];
    // SAFETY: valid buffer of the stated length.
    let status = unsafe { gs_render_metrics(1, big.as_mut_ptr(), big.len(), &mut written) };
    assert_eq!(status, gs_status::GS_OK);
    // SAFETY: NUL-terminated within the buffer.
    let json = unsafe { CStr::from_ptr(big.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        json.starts_with('{') && json.contains("\"active_streams\":0"),
        "{json}"
    );
}

#[test]
fn malformed_configuration_names_the_variable() {
    common::require_process_per_test();
    let mut config = gs_config {
        size: std::mem::size_of::<gs_config>(),
        drain_delay_seconds: 1.0,
        shutdown_timeout_seconds: 10.0,
        close_notice_seconds: 2.0,
        exit_watchdog_seconds: 0.0,
        second_signal: 0,
        handle_sigint: 1,
        hook_budget_seconds: 1.0,
        exit_watchdog_status: 70,
    };
    for (field, expected_variable) in [
        (0, "GS_DRAIN_DELAY_SECONDS"),
        (1, "GS_SHUTDOWN_TIMEOUT_SECONDS"),
        (2, "GS_CLOSE_NOTICE_SECONDS"),
        (3, "GS_EXIT_WATCHDOG_SECONDS"),
        (4, "GS_HOOK_BUDGET_SECONDS"),
    ] {
        // -1.0 is GS_DEFAULT_SECONDS for three of them (tested below):
        // every other negative value is refused.
        for value in [f64::NAN, -2.0, -0.5, f64::NEG_INFINITY] {
            let mut bad = config;
            *match field {
                0 => &mut bad.drain_delay_seconds,
                1 => &mut bad.shutdown_timeout_seconds,
                2 => &mut bad.close_notice_seconds,
                3 => &mut bad.exit_watchdog_seconds,
                _ => &mut bad.hook_budget_seconds,
            } = value;
            // SAFETY: a valid config; rejected before anything is installed.
            let status = unsafe { gs_install_signal_handlers(&bad) };
            assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
            assert!(last_error().contains(expected_variable), "{}", last_error());
        }
    }
    // GS_DEFAULT_SECONDS: "not set", scaled to the timeout; not for the
    // timeout or the watchdog.
    let mut defaults = config;
    defaults.drain_delay_seconds = GS_DEFAULT_SECONDS;
    defaults.close_notice_seconds = GS_DEFAULT_SECONDS;
    defaults.hook_budget_seconds = GS_DEFAULT_SECONDS;
    // SAFETY: a valid config.
    assert_eq!(unsafe { gs_configure(&defaults) }, gs_status::GS_OK);
    // Resolved: the defaults for a 10 s timeout are 2, 2 and 2.5 s.
    let mut resolved = defaults;
    // SAFETY: a valid, writable config; NULL is refused.
    unsafe {
        assert_eq!(gs_config_resolve(&mut resolved), gs_status::GS_OK);
        assert_eq!(
            gs_config_resolve(ptr::null_mut()),
            gs_status::GS_ERR_INVALID_ARGUMENT
        );
    }
    assert_eq!(resolved.drain_delay_seconds, 2.0);
    assert_eq!(resolved.close_notice_seconds, 2.0);
    assert_eq!(resolved.hook_budget_seconds, 2.5);
    for field in [0, 1] {
        let mut bad = config;
        *if field == 0 {
            &mut bad.shutdown_timeout_seconds
        } else {
            &mut bad.exit_watchdog_seconds
        } = GS_DEFAULT_SECONDS;
        // SAFETY: a valid config.
        let status = unsafe { gs_configure(&bad) };
        assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    }
    config.close_notice_seconds = 11.0;
    // SAFETY: a valid config struct with an inconsistent value.
    let status = unsafe { gs_install_signal_handlers(&config) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    assert!(last_error().contains("GS_CLOSE_NOTICE_SECONDS"));
    config.close_notice_seconds = 2.0;
    for status in [0, -1, 256] {
        let mut bad = config;
        bad.exit_watchdog_status = status;
        // SAFETY: as above.
        let result = unsafe { gs_install_signal_handlers(&bad) };
        assert_eq!(result, gs_status::GS_ERR_INVALID_CONFIG);
        assert!(
            last_error().contains("GS_EXIT_WATCHDOG_STATUS"),
            "{}",
            last_error()
        );
    }
    config.second_signal = 9;
    // SAFETY: as above.
    let status = unsafe { gs_install_signal_handlers(&config) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    assert!(last_error().contains("GS_SECOND_SIGNAL"));

    std::env::set_var("GS_SHUTDOWN_TIMEOUT_SECONDS", "soon");
    let mut out = config;
    // SAFETY: `out` is writable.
    let status = unsafe { gs_config_from_env(&mut out) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    assert!(last_error().contains("GS_SHUTDOWN_TIMEOUT_SECONDS"));
    // SAFETY: NULL reads the environment, which is malformed.
    let status = unsafe { gs_configure(std::ptr::null()) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    // Infinity is "no limit", by the same rule as the waits'.
    std::env::set_var("GS_SHUTDOWN_TIMEOUT_SECONDS", "inf");
    // SAFETY: `out` is writable.
    assert_eq!(unsafe { gs_config_from_env(&mut out) }, gs_status::GS_OK);
    assert_eq!(out.shutdown_timeout_seconds, f64::INFINITY);
    // SAFETY: a valid config.
    assert_eq!(unsafe { gs_configure(&out) }, gs_status::GS_OK);
    // Nothing was installed by any of the failures.
    assert!(!last_call::signal_handlers_installed());
}

#[test]
fn the_version_is_the_crate_version() {
    common::require_process_per_test();
    // SAFETY: gs_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(gs_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn host_exiting_refuses_a_nan_or_negative_timeout_and_may_be_called_again() {
    common::require_process_per_test();
    for bad in [f64::NAN, -1.0, f64::NEG_INFINITY] {
        assert_eq!(gs_host_exiting(bad), gs_status::GS_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("timeout"), "{}", last_error());
    }
    // Nothing in flight: the gate shuts at once, and shutting it again (an
    // atexit handler run twice, say) is no error.
    assert_eq!(gs_host_exiting(0.0), gs_status::GS_OK);
    assert_eq!(gs_host_exiting(f64::INFINITY), gs_status::GS_OK);
}

#[test]
fn a_config_without_its_size_is_refused_and_any_flag_byte_is_a_flag() {
    common::require_process_per_test();
    // The struct can grow: its size, set by the host, says which fields it
    // has. Unset (0 here), nothing is read or written.
    let mut config = gs_config {
        size: 0,
        drain_delay_seconds: 0.0,
        shutdown_timeout_seconds: 0.0,
        close_notice_seconds: 0.0,
        exit_watchdog_seconds: 0.0,
        second_signal: 0,
        handle_sigint: 0,
        hook_budget_seconds: 0.0,
        exit_watchdog_status: 0,
    };
    // SAFETY: a writable gs_config.
    let status = unsafe { gs_config_from_env(&mut config) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("sizeof(gs_config)"),
        "{}",
        last_error()
    );
    assert_eq!(config.shutdown_timeout_seconds, 0.0, "nothing written");
    assert_eq!(
        // SAFETY: as above.
        unsafe { gs_configure(&config) },
        gs_status::GS_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("size"), "{}", last_error());
    config.size = std::mem::size_of::<gs_config>();
    // SAFETY: as above.
    assert_eq!(unsafe { gs_config_from_env(&mut config) }, gs_status::GS_OK);
    assert_eq!(config.size, std::mem::size_of::<gs_config>());
    assert_eq!(config.handle_sigint, 1);
    // Any non-zero byte is true: no value a C host passes is undefined
    // behaviour here (a `bool` of 7 was).
    config.handle_sigint = 7;
    // SAFETY: a valid gs_config.
    assert_eq!(unsafe { gs_configure(&config) }, gs_status::GS_OK);
    assert_eq!(gs_set_draining(2), gs_status::GS_OK);
    assert!(gs_is_draining());
    assert_eq!(gs_set_draining(0), gs_status::GS_OK);
    assert!(!gs_is_draining());
}
