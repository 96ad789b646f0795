"""An SSE stream read line by line on a thread of its own, for tests that
hold streams open while they signal a server.

`follow(url)` starts the thread and returns it with a dict that fills as
lines arrive: `box["lines"]` (each line as text, blank lines included),
`box["times"]` (each line's arrival on `time.monotonic()`, the same
length or one ahead), and `box["error"]` (the HTTP error that ended the
stream, if one did). Every read is bounded by a 30 s timeout; the thread
is a daemon, and its stream ends with the server the test kills.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


def _read(url: str, box: dict[str, Any]) -> None:
    try:
        with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
            for line in response.iter_lines():
                box["times"].append(time.monotonic())
                box["lines"].append(line)
    except httpx.HTTPError as error:
        box["error"] = error


def follow(url: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Reads `url`'s stream on a thread of its own (see the module)."""
    box: dict[str, Any] = {"lines": [], "times": []}
    thread = threading.Thread(target=_read, args=(url, box), daemon=True)
    thread.start()
    return thread, box
