//! The probe listener over real HTTP on 127.0.0.1, driving the process-wide
//! runtime (one process per test under cargo-nextest): the contract's
//! answers, `/drain` and its token, the heartbeat, readiness checks that
//! fail or hang, bad addresses and a port in use.

mod common;

use common::request;
use last_call::ffi::*;
use last_call::{Phase, ProbeOptions, Runtime};
use std::ffi::{c_void, CStr};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// GET `path`: the status and the body's line.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, body, _) = request(addr, "GET", path, &[]);
    (status, body.trim_end().to_owned())
}

fn start(options: ProbeOptions) -> SocketAddr {
    common::require_process_per_test();
    Runtime::global().start_probe_listener(options).unwrap()
}

#[test]
fn the_contract_answers() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    assert_eq!(get(addr, "/readyz"), (200, "ok".into()));
    assert_eq!(get(addr, "/healthz"), (200, "alive".into()));
    let (status, text, kind) = request(addr, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert!(text.contains("# TYPE gs_active_streams gauge"), "{text}");
    let (status, json, kind) = request(addr, "GET", "/metrics", &[("accept", "application/json")]);
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["phase_name"], "serving");
    assert_eq!(get(addr, "/nothing").0, 404);
    assert_eq!(request(addr, "POST", "/readyz", &[]).0, 405);
    assert_eq!(request(addr, "GET", "/drain", &[]).0, 405);
    // Draining: not ready, still alive, metrics still served.
    Runtime::global().set_draining(true).unwrap();
    assert_eq!(get(addr, "/readyz"), (503, "draining".into()));
    assert_eq!(get(addr, "/healthz"), (200, "alive".into()));
    assert_eq!(get(addr, "/metrics").0, 200);
}

#[test]
fn drain_without_a_configured_token_is_forbidden_and_never_drains() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    let (status, _, _) = request(
        addr,
        "POST",
        "/drain",
        &[("authorization", "Bearer anything")],
    );
    assert_eq!(status, 403);
    assert_eq!(Runtime::global().phase(), Phase::Serving);
}

#[test]
fn drain_needs_the_right_bearer_token() {
    let mut options = ProbeOptions::new("127.0.0.1:0");
    options.drain_token = Some("s3cret".into());
    let addr = start(options);
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Bearer s3cret-and-more")],
        vec![("authorization", "s3cret")],
    ] {
        assert_eq!(
            request(addr, "POST", "/drain", &headers).0,
            401,
            "{headers:?}"
        );
        assert_eq!(Runtime::global().phase(), Phase::Serving);
    }
    let (status, body, _) = request(
        addr,
        "POST",
        "/drain",
        // The scheme in any case (RFC 9110, 11.1).
        &[("authorization", "bearer s3cret")],
    );
    assert_eq!((status, body.as_str()), (200, "draining\n"));
    assert_eq!(Runtime::global().phase(), Phase::Draining);
    assert_eq!(get(addr, "/readyz").0, 503);
}

#[test]
fn a_drain_token_loses_one_trailing_newline_and_other_white_space_is_refused() {
    common::require_process_per_test();
    // As `kubectl create secret --from-file` makes it.
    std::env::set_var("GS_DRAIN_TOKEN", "s3cret\n");
    let options = ProbeOptions::from_env_with_addr("127.0.0.1:0").unwrap();
    assert_eq!(options.drain_token.as_deref(), Some("s3cret"));
    for bad in ["s3cret ", "s3cret\n\n", "\ts3cret"] {
        std::env::set_var("GS_DRAIN_TOKEN", bad);
        let error = ProbeOptions::from_env_with_addr("127.0.0.1:0").unwrap_err();
        assert_eq!(error.variable, "GS_DRAIN_TOKEN", "{bad:?}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}

#[test]
fn liveness_follows_the_heartbeat_once_there_is_one() {
    let mut options = ProbeOptions::new("127.0.0.1:0");
    options.heartbeat_stale_after = Duration::from_millis(300);
    let addr = start(options);
    // Never beat: alive, as without a heartbeat.
    assert_eq!(get(addr, "/healthz").0, 200);
    Runtime::global().heartbeat();
    assert_eq!(get(addr, "/healthz").0, 200);
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 503);
    assert!(body.starts_with("stale: no heartbeat for"), "{body}");
    Runtime::global().heartbeat();
    assert_eq!(get(addr, "/healthz"), (200, "alive".into()));
}

#[test]
fn readiness_checks_decide_and_a_hanging_one_is_timed_out() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    let runtime = Runtime::global();
    let fine = runtime
        .add_readiness_check("fine", Duration::from_secs(1), || true)
        .unwrap();
    let down = runtime
        .add_readiness_check("tasks", Duration::from_secs(1), || false)
        .unwrap();
    assert_eq!(get(addr, "/readyz"), (503, "not ready: tasks".into()));
    assert!(runtime.remove_readiness_check(down));
    assert_eq!(get(addr, "/readyz"), (200, "ok".into()));
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    runtime
        .add_readiness_check("hangs", Duration::from_millis(200), move || {
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
            true
        })
        .unwrap();
    let begun = Instant::now();
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("hangs (timed out after 0.2 s)"), "{body}");
    assert!(begun.elapsed() < Duration::from_secs(5));
    // Still running from the last probe: not started again, still failing.
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 503);
    assert!(body.contains("hangs (still running)"), "{body}");
    release.send(()).unwrap();
    assert!(runtime.remove_readiness_check(fine));
}

#[test]
fn bad_addresses_and_a_port_in_use_are_refused_naming_the_variable() {
    common::require_process_per_test();
    let last_error = || {
        let mut buffer = [0 as std::ffi::c_char; 512];
        // SAFETY: a writable buffer of its length.
        unsafe { gs_last_error_message(buffer.as_mut_ptr(), buffer.len(), std::ptr::null_mut()) };
        // SAFETY: NUL-terminated by gs_last_error_message.
        unsafe { CStr::from_ptr(buffer.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    for bad in [
        c"",
        c"8081",
        c"127.0.0.1:99999",
        c"no such host:80",
        c"127.0.0.1:-1",
    ] {
        // SAFETY: a NUL-terminated string; no output buffer.
        let status = unsafe {
            gs_start_probe_listener(bad.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut())
        };
        assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG, "{bad:?}");
        assert!(last_error().contains("GS_PROBE_ADDR"), "{}", last_error());
    }
    // NULL with GS_PROBE_ADDR unset names the variable too.
    std::env::remove_var("GS_PROBE_ADDR");
    // SAFETY: NULL reads the environment.
    let status = unsafe {
        gs_start_probe_listener(
            std::ptr::null(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    assert!(last_error().contains("GS_PROBE_ADDR"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let in_use = std::ffi::CString::new(taken.local_addr().unwrap().to_string()).unwrap();
    // SAFETY: as above.
    let status = unsafe {
        gs_start_probe_listener(
            in_use.as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, gs_status::GS_ERR_INVALID_CONFIG);
    assert!(last_error().contains("GS_PROBE_ADDR"), "{}", last_error());
    assert!(last_error().contains("cannot listen"), "{}", last_error());
    // A good one, from the environment, then a second start.
    std::env::set_var("GS_PROBE_ADDR", "127.0.0.1:0");
    let mut bound = [0 as std::ffi::c_char; 64];
    // SAFETY: a writable buffer of its length.
    let status = unsafe {
        gs_start_probe_listener(
            std::ptr::null(),
            bound.as_mut_ptr(),
            bound.len(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, gs_status::GS_OK);
    // SAFETY: NUL-terminated by the call.
    let addr: SocketAddr = unsafe { CStr::from_ptr(bound.as_ptr()) }
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/healthz").0, 200);
    // SAFETY: as above.
    let status = unsafe {
        gs_start_probe_listener(
            c"127.0.0.1:0".as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(status, gs_status::GS_ERR_ALREADY_STARTED);
}

unsafe extern "C" fn c_check(user_data: *mut c_void) -> u8 {
    // SAFETY: the test passes a pointer to a live AtomicBool.
    u8::from(
        unsafe { &*(user_data as *const std::sync::atomic::AtomicBool) }
            .load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[test]
fn readiness_checks_and_heartbeats_through_the_c_abi() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut id = 0;
    // SAFETY: a static flag outlives the check; `id` is writable.
    let status = unsafe {
        gs_add_readiness_check(
            c"database".as_ptr(),
            Some(c_check),
            &READY as *const _ as *mut c_void,
            1.0,
            &mut id,
        )
    };
    assert_eq!(status, gs_status::GS_OK);
    assert_eq!(get(addr, "/readyz"), (503, "not ready: database".into()));
    READY.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz"), (200, "ok".into()));
    for bad_timeout in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        // SAFETY: as above.
        let status = unsafe {
            gs_add_readiness_check(
                c"x".as_ptr(),
                Some(c_check),
                std::ptr::null_mut(),
                bad_timeout,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(status, gs_status::GS_ERR_INVALID_ARGUMENT, "{bad_timeout}");
    }
    assert_eq!(gs_remove_readiness_check(id), gs_status::GS_OK);
    assert_eq!(gs_remove_readiness_check(id), gs_status::GS_ERR_NOT_FOUND);
    gs_heartbeat();
    assert!(Runtime::global().heartbeat_age().unwrap() < Duration::from_secs(10));
}

#[test]
fn a_flood_of_connections_is_bounded_and_the_probe_still_answers() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    // 600 idle connections that never send a byte (more than the bound).
    let idle: Vec<_> = (0..600)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() >= 300);
    // Excess connections are closed by the server; the idle ones it keeps
    // time out their headers. Within that time, probes get through again.
    let begun = Instant::now();
    let mut answered = false;
    while begun.elapsed() < Duration::from_secs(20) {
        if matches!(
            std::panic::catch_unwind(|| get(addr, "/healthz")),
            Ok((200, _))
        ) {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answered, "no probe got through the flood");
    drop(idle);
}

#[test]
fn the_kubelet_is_answered_through_a_flood_of_idle_and_slow_connections() {
    let addr = start(ProbeOptions::new("127.0.0.1:0"));
    // Ten times the cap, idle or sending their headers slowly, re-opened
    // as the server closes them: each probe, on a new connection, is
    // answered at its first try (the bound is generous; BENCHMARKS.md has
    // the timing).
    let flood = common::flood::Flood::start(addr, 2_500);
    for n in 0..10 {
        let answer = common::flood::probe(addr, "/healthz", Duration::from_secs(3));
        assert_eq!(answer, Ok(200), "probe {n} through the flood");
    }
    assert!(flood.opened.load(std::sync::atomic::Ordering::Relaxed) >= 2_500);
}

/// The listen backlog of the socket listening on `port`, as the kernel
/// reports it (`ss`, from iproute2: the setup installs it).
fn backlog(port: u16) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    // State, Recv-Q, Send-Q (for a listening socket: its backlog), ...
    text.split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn the_listeners_queue_a_wave_of_connections() {
    // std's default of 128 overflowed under a wave of reconnections: each
    // overflowed client waited a second for its SYN to be sent again.
    let probes = start(ProbeOptions::new("127.0.0.1:0"));
    assert!(backlog(probes.port()) >= 1024, "{}", backlog(probes.port()));
    let hub = Runtime::global()
        .start_hub(last_call::HubOptions::new(
            "127.0.0.1:0",
            "a secret the tests share, 32 bytes or more",
        ))
        .unwrap();
    assert!(backlog(hub.port()) >= 1024, "{}", backlog(hub.port()));
}

#[test]
fn gs_listen_backlog_sets_both_listeners_backlog_and_a_bad_value_is_refused_by_name() {
    common::require_process_per_test();
    for bad in [
        "0",
        "-1",
        "many",
        "65536",
        "99999999999999999999999",
        "1.5",
        "",
    ] {
        std::env::set_var("GS_LISTEN_BACKLOG", bad);
        match Runtime::global().start_probe_listener(ProbeOptions::new("127.0.0.1:0")) {
            Err(last_call::Error::Config(error)) => {
                assert_eq!(error.variable, "GS_LISTEN_BACKLOG", "{bad:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Nothing started: a good value starts both listeners with it.
    std::env::set_var("GS_LISTEN_BACKLOG", "2000");
    let probes = Runtime::global()
        .start_probe_listener(ProbeOptions::new("127.0.0.1:0"))
        .unwrap();
    assert_eq!(backlog(probes.port()), 2000);
    let hub = Runtime::global()
        .start_hub(last_call::HubOptions::new(
            "127.0.0.1:0",
            "a secret the tests share, 32 bytes or more",
        ))
        .unwrap();
    assert_eq!(backlog(hub.port()), 2000);
}

#[test]
fn a_start_with_no_bound_buffer_starts_and_a_small_one_starts_nothing() {
    // Before: NULL `bound` started the listener, then returned
    // GS_ERR_BUFFER_TOO_SMALL (and a retry got GS_ERR_ALREADY_STARTED).
    common::require_process_per_test();
    let mut small = [0 as std::ffi::c_char; 8];
    let mut needed = 0usize;
    // SAFETY: a NUL-terminated address, a writable buffer of its length.
    let status = unsafe {
        gs_start_probe_listener(
            c"127.0.0.1:0".as_ptr(),
            small.as_mut_ptr(),
            small.len(),
            &mut needed,
        )
    };
    assert_eq!(status, gs_status::GS_ERR_BUFFER_TOO_SMALL);
    assert_eq!(needed + 1, GS_ADDRESS_LENGTH_MAX);
    // Nothing started: the next start is the first.
    let mut length = 0usize;
    // SAFETY: NULL bound (optional), a writable length.
    let status = unsafe {
        gs_start_probe_listener(
            c"127.0.0.1:0".as_ptr(),
            std::ptr::null_mut(),
            0,
            &mut length,
        )
    };
    assert_eq!(status, gs_status::GS_OK);
    assert!(length >= "127.0.0.1:1".len(), "{length}");
    // SAFETY: as above.
    let again = unsafe {
        gs_start_probe_listener(
            c"127.0.0.1:0".as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(again, gs_status::GS_ERR_ALREADY_STARTED);
}
