//! The checked-in header must be exactly what cbindgen generates now.
//! `make header` (GS_UPDATE_HEADER=1 cargo test --test header_is_fresh)
//! rewrites it.

use std::path::Path;

#[test]
fn checked_in_header_matches_a_fresh_generation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("header is UTF-8");
    let path = root.join("include/last_call.h");
    if std::env::var_os("GS_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/last_call.h is stale: run `make header` and commit the result"
    );
}
