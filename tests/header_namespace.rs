//! The header claims only `gs_`/`GS_` names: it compiles in C and in C++,
//! with every warning an error, in a host that defines the common macro
//! names before including it and again after (a redefinition is a
//! warning, so a macro of the header with one of these names fails the
//! build). Before, the header defined `ALL` (a list of Rust constants) and
//! an unprefixed `DEFAULT_EXIT_WATCHDOG_STATUS`, and a host with its own
//! `ALL` did not compile.

mod common;

use std::path::Path;
use std::process::Command;

const HOST_MACROS: &str = "
#define ALL 1
#define OK 0
#define ERROR 1
#define DEFAULT 2
#define DEFAULT_EXIT_WATCHDOG_STATUS 3
#define DEFAULT_SECONDS 4
#define MAX_ACTIVE_STREAMS 5
#define DRAIN_DELAY 6
#define SHUTDOWN_TIMEOUT 7
#define CLOSE_NOTICE 8
#define HOOK_BUDGET 9
#define SECOND_SIGNAL 10
#define EXIT_WATCHDOG 11
#define EXIT_WATCHDOG_STATUS 12
#define Phase 13
#define SecondSignal 14
#define WaitWord 15
";

fn source() -> String {
    format!(
        "{HOST_MACROS}\n#include \"last_call.h\"\n{HOST_MACROS}\n\
         int main(void) {{ return gs_active_streams() == 0 ? OK : ERROR + ALL; }}\n"
    )
}

fn compiles(compiler: &str, args: &[&str], file: &str) {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("header-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, source()).unwrap();
    let output = Command::new(compiler)
        .args(args)
        .args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-I"])
        .arg(common::root().join("include"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_header_compiles_in_c_beside_common_macro_names() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    compiles(&cc, &["-std=c11", "-pedantic"], "host.c");
}

#[test]
fn the_header_compiles_in_cpp_beside_common_macro_names() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    compiles(&cxx, &["-std=c++17", "-pedantic"], "host.cpp");
}
