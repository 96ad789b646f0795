#!/bin/sh
# The CARGO that `make wheel` hands setuptools-rust: it links the library
# with zig (cargo-zigbuild) against an older glibc, named in the target
# (x86_64-unknown-linux-gnu.2.17). setuptools-rust runs `$CARGO rustc` to
# build and `$CARGO metadata` (and `--version`) to inspect; cargo-zigbuild
# has no `metadata` command, so everything but the build goes to cargo.
if [ "${1-}" = rustc ]; then
  exec cargo-zigbuild "$@"
fi
exec "${REAL_CARGO:-cargo}" "$@"
