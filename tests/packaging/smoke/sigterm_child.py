"""A child process for the smoke suite: installs the signal handlers, holds
one stream, and ends it once SIGTERM has started the drain. Exits 0 once the
runtime reaches Stopped; prints each step on stdout for the parent."""

from __future__ import annotations

import sys

from last_call import GracefulShutdownManager, Phase

manager = GracefulShutdownManager()
manager.install_signal_handlers(
    drain_delay_seconds=0.2, shutdown_timeout_seconds=20, close_notice_seconds=1
)
manager.increment_active_streams()
print("ready", flush=True)

if not manager.wait_for_phase(Phase.DRAINING, timeout=30):
    sys.exit("no SIGTERM within 30 s")
print("draining", flush=True)
manager.decrement_active_streams()
if not manager.wait_for_phase(Phase.STOPPED, timeout=30):
    sys.exit(f"stuck in {manager.phase.label}")
print(f"stopped after {manager.streams_finished_total} stream(s)", flush=True)
