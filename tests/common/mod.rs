//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod flood;
pub mod sse;

use http_body_util::BodyExt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Tests that drive the process-wide runtime need a process each, which
/// cargo-nextest gives (`make test` runs it). Under plain `cargo test` they
/// would share one runtime and fail in confusing ways; fail clearly instead.
pub fn require_process_per_test() {
    assert!(
        std::env::var_os("NEXTEST").is_some(),
        "this test drives the process-wide runtime and needs a process of its own: run it with `cargo nextest run` (as `make test` does)"
    );
}

/// A multi-thread tokio runtime with `threads` workers, for a test's
/// clients (or the server it runs in process).
pub fn tokio_runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (bounded by `within`) until `runtime` counts `active` streams.
pub fn wait_active(runtime: &last_call::Runtime, active: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while runtime.active_streams() != active {
        assert!(
            Instant::now() < deadline,
            "{} active streams, not {active}",
            runtime.active_streams()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `child` in a forked child of this test process, which then ends
/// with the status `child` returns, and gives that status (asserting the
/// child exited, within `within`: killed and reaped past it). The child
/// must only call into the runtime (whose fork handlers leave it usable)
/// and code that takes no lock another thread may hold: it runs no test
/// harness code, and ends with `_exit`.
pub fn in_forked_child(within: Duration, child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `child` (held by the caller to the rule
    // above) and ends with `_exit`, running nothing of the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child at once, as a forked child should.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + within;
    let mut status = 0;
    // SAFETY: waits for the child this test forked, without blocking.
    while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
        if Instant::now() > deadline {
            // SAFETY: the child is this test's own.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        libc::WIFEXITED(status),
        "the forked child ended with status {status}"
    );
    libc::WEXITSTATUS(status)
}

/// Removes every `GS_*` setting the test process may have inherited, so a
/// child sees only what its test gives it.
pub fn clear_gs_environment(command: &mut Command) {
    for variable in last_call::env::ALL.into_iter().chain(["GS_DRAIN_TOKEN"]) {
        command.env_remove(variable);
    }
}

/// A built example binary (cargo builds examples for integration tests).
pub fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo build --examples)",
        path.display()
    );
    path
}

/// A child process whose stdout is read line by line on a thread, and
/// which is killed when dropped (so a failing test never leaks it).
pub struct ChildProcess {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    /// Its stderr so far, read all along on a thread (a pipe nobody reads
    /// would block the child).
    errors: std::sync::Arc<std::sync::Mutex<String>>,
    errors_reader: Option<std::thread::JoinHandle<()>>,
}

impl ChildProcess {
    pub fn spawn(command: Command) -> ChildProcess {
        Self::spawn_with(command, true)
    }

    /// As [`ChildProcess::spawn`], but its stderr is a pipe left in
    /// `child.stderr` for the test (to hold unread, or to close).
    pub fn spawn_keeping_stderr(command: Command) -> ChildProcess {
        Self::spawn_with(command, false)
    }

    fn spawn_with(mut command: Command, read_stderr: bool) -> ChildProcess {
        command
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn child");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let errors_reader = read_stderr
            .then(|| child.stderr.take())
            .flatten()
            .map(|stderr| {
                let errors = std::sync::Arc::clone(&errors);
                std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        let mut text = errors.lock().unwrap();
                        text.push_str(&line);
                        text.push('\n');
                    }
                })
            });
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess {
            child,
            lines,
            seen: Vec::new(),
            errors,
            errors_reader,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to `pid` (this child or another process it made).
    pub fn signal(pid: i32, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal}) failed");
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads lines until one contains `needle`; panics with what was seen
    /// if none does within `timeout`.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!(
                    "no line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// All remaining stdout lines until the pipe closes (bounded).
    pub fn read_to_end(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while let Some(_line) = self.next_line(deadline.saturating_duration_since(Instant::now())) {
        }
    }

    /// Waits for the exit, at most `timeout`; kills it and panics on expiry.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "child did not exit within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            // Bounded wait for a child process: there is no portable
            // blocking wait with a timeout in std.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its stderr: all of it once the child has exited, what has come so
    /// far before.
    pub fn stderr(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            if let Some(reader) = self.errors_reader.take() {
                let _ = reader.join();
            }
        }
        self.errors.lock().unwrap().clone()
    }

    /// Waits (bounded) until its stderr has a line containing `needle`.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.errors.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no stderr line containing {needle:?} within {timeout:?}; saw:\n{}",
                self.errors.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One of the helper's JSON lines.
pub fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding liblast_call.so (target/<profile>).
pub fn library_dir() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    assert!(
        dir.join("liblast_call.so").exists(),
        "liblast_call.so not found in {}",
        dir.display()
    );
    dir
}

/// Compiles the C program `source` (relative to the repository root) with
/// the system C compiler against the checked-in header and the built shared
/// library, as `name` in the test's scratch directory.
pub fn compile_c(source: &str, name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let libs = library_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join(source))
        .arg("-L")
        .arg(&libs)
        .arg(format!("-Wl,-rpath,{}", libs.display()))
        .args(["-llast_call", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "{source} did not compile");
    out
}

/// One request on a fresh connection; (status, body, content type).
pub fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "probe");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            sender.send_request(
                builder
                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                    .unwrap(),
            ),
        )
        .await
        .expect("an answer in time")
        .unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), kind)
    })
}
