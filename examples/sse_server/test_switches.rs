//! Test-only switches, off by default, refused in production configuration
//! (a server listening beyond loopback, as the manifest's HOST=0.0.0.0 does).
//!
//! `SSE_TEST_HANG_SHUTDOWN_HOOK=1` registers a shutdown hook that never
//! returns, so that the rolling-update harness can show the pod still exits
//! before SIGKILL (the runtime leaves the hook behind; the exit watchdog ends
//! the process with its line).

use last_call::Runtime;

const HANG_SHUTDOWN_HOOK: &str = "SSE_TEST_HANG_SHUTDOWN_HOOK";
const LOOPBACK: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

pub fn install(runtime: &Runtime, host: &str) -> Result<(), String> {
    match std::env::var(HANG_SHUTDOWN_HOOK).as_deref() {
        Err(_) | Ok("") | Ok("0") => return Ok(()),
        Ok("1") => {}
        Ok(other) => {
            return Err(format!(
                "invalid {HANG_SHUTDOWN_HOOK}={other:?}: expected 1 or 0"
            ))
        }
    }
    if !LOOPBACK.contains(&host) {
        return Err(format!(
            "{HANG_SHUTDOWN_HOOK} is a test-only switch, refused with HOST={host:?} (not loopback)"
        ));
    }
    runtime
        .register_shutdown_hook("test-hung-hook", |_left| loop {
            std::thread::park();
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}
