//! The library's list of `GS_*` settings (`gs_setting_names`) against
//! every `GS_*` variable the crates define: a variable added to a crate
//! and forgotten in the list would be settable from the environment but
//! not from a host's configuration (`gs_set_setting` refuses it), and the
//! Python package's table (held to this list by its own tests) would not
//! know it.

use last_call::ffi::{gs_set_setting, gs_setting_names, gs_status};
use std::collections::BTreeSet;
use std::ffi::CString;
use std::path::Path;

fn listed() -> BTreeSet<String> {
    let mut needed = 0usize;
    // SAFETY: a NULL buffer of length 0 asks for the size.
    unsafe { gs_setting_names(std::ptr::null_mut(), 0, &mut needed) };
    let mut buffer = vec![0u8; needed + 1];
    // SAFETY: the buffer holds `needed + 1` bytes.
    let status = unsafe { gs_setting_names(buffer.as_mut_ptr().cast(), buffer.len(), &mut needed) };
    assert_eq!(status, gs_status::GS_OK);
    let text = std::str::from_utf8(&buffer[..needed]).unwrap();
    text.lines().map(str::to_owned).collect()
}

/// `pub const NAME: &str = "GS_...";` in every Rust file under `dir`.
fn defined(dir: &Path, into: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            defined(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with("pub const ") && line.contains(": &str = \"GS_") {
                    let name = line.split('"').nth(1).unwrap();
                    into.insert(name.to_owned());
                }
            }
        }
    }
}

#[test]
fn every_gs_variable_the_crates_define_is_listed_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates = BTreeSet::new();
    defined(&root.join("crates"), &mut crates);
    // The runtime's, the probe listener's, the hub's and the store's.
    assert!(crates.len() >= 27, "{crates:?}");
    let list = listed();
    assert_eq!(
        list, crates,
        "gs_setting_names against the crates' constants"
    );
}

#[test]
fn a_setting_not_in_the_list_is_refused_and_a_listed_one_is_read_from_code() {
    let unknown = CString::new("GS_SHUTDOWN_TIMEOUT").unwrap();
    let value = CString::new("6").unwrap();
    // SAFETY: two NUL-terminated strings.
    let status = unsafe { gs_set_setting(unknown.as_ptr(), value.as_ptr()) };
    assert_eq!(status, gs_status::GS_ERR_INVALID_ARGUMENT);
    let known = CString::new("GS_SHUTDOWN_TIMEOUT_SECONDS").unwrap();
    // SAFETY: as above.
    let status = unsafe { gs_set_setting(known.as_ptr(), value.as_ptr()) };
    assert_eq!(status, gs_status::GS_OK);
    let config = last_call::Config::from_env().unwrap();
    assert_eq!(config.shutdown_timeout, std::time::Duration::from_secs(6));
    // SAFETY: a NUL-terminated name; a NULL value: the environment's again.
    let status = unsafe { gs_set_setting(known.as_ptr(), std::ptr::null()) };
    assert_eq!(status, gs_status::GS_OK);
    let config = last_call::Config::from_env().unwrap();
    assert_eq!(config.shutdown_timeout, std::time::Duration::from_secs(25));
}
