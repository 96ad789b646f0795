"""Python code that the runtime is still running when the process exits,
for test_host_exit.py. Each test app calls ``install(manager)``; the
environment chooses:

* ``LEFT_BEHIND=hook``: a shutdown hook that never returns (it wakes every
  5 ms, as a hook polling for something would); the runtime leaves it
  running past its share, and the host then exits.
* ``LEFT_BEHIND=phase-callback``: a phase callback that never returns from
  its call for Stopped (the delivery thread is inside it as the host exits).

Both wake often so that, without the fix, the thread takes the GIL while
the interpreter finalizes, which CPython < 3.14 answers with pthread_exit().
"""

import os
import time


def _forever() -> None:
    while True:
        time.sleep(0.005)


def install(manager) -> None:
    chosen = os.environ.get("LEFT_BEHIND")
    if chosen:
        print(f"left behind: {chosen} in {os.getpid()}", flush=True)
    if chosen == "hook":
        manager.register_shutdown_hook("outlives-its-share", lambda _seconds: _forever())
    elif chosen == "phase-callback":

        def blocks_at_stopped(_from, to) -> None:
            if to.name == "STOPPED":
                _forever()

        manager.on_phase(blocks_at_stopped)
