//! The library's version through the C ABI.

use std::ffi::c_char;

/// The library version, as a static NUL-terminated string ("0.1.0").
#[no_mangle]
pub extern "C" fn gs_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
