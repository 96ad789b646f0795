#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain, only when it is
# missing: cargo-nextest, valgrind, a C/C++ compiler, HAProxy, Chromium, redis-server, promtool. Safe to run repeatedly.
# With --bench (make bench), also the stream hub's peers that benches/peers.py
# runs beside it: nginx with the nchan module, and Pushpin (which brings Qt 5
# and ZeroMQ: about 60 MB, so only for the benchmarks).
set -euo pipefail

apt_packages=()
if [[ "${1:-}" == "--bench" ]]; then
  command -v nginx >/dev/null || apt_packages+=(nginx)
  [[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]] || apt_packages+=(libnginx-mod-nchan)
  command -v pushpin >/dev/null || apt_packages+=(pushpin)
fi
command -v cc >/dev/null || apt_packages+=(gcc)
command -v c++ >/dev/null || apt_packages+=(g++)
command -v valgrind >/dev/null || apt_packages+=(valgrind)
# The rolling-update harness puts the example servers behind HAProxy.
command -v haproxy >/dev/null || apt_packages+=(haproxy)
# The rolling harness's browser clients: headless Chromium, driven by
# selenium (tests/requirements-browser.txt) through chromedriver.
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
# make install's test builds the C host from the prefix with pkg-config.
command -v pkg-config >/dev/null || apt_packages+=(pkg-config)
# The stream hub's shared store: the tests start their own redis-server
# processes (single, and a local Redis Cluster) on free ports.
command -v redis-server >/dev/null || apt_packages+=(redis-server)
command -v redis-cli >/dev/null || apt_packages+=(redis-tools)
# ss (the listeners' backlog test reads the kernel's view of it).
command -v ss >/dev/null || apt_packages+=(iproute2)
# promtool checks and unit-tests the example's Prometheus alert rules
# (examples/kubernetes/monitoring); Debian ships it in the prometheus
# package (a 19 MB download). Where the machine starts services, the
# package starts a Prometheus server too, as redis-server's and haproxy's do.
command -v promtool >/dev/null || apt_packages+=(prometheus)
if ((${#apt_packages[@]})); then
  echo "setup: installing ${apt_packages[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest
fi
