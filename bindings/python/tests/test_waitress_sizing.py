"""last_call.waitress's sizing warning ("N open streams hold M of
Waitress's T threads"): it counts the streams that hold a Waitress thread.
Real Waitress child processes, real SSE clients over 127.0.0.1.

The hub's streams are counted as open streams too, but hold no thread:
a host whose streams are all in the hub was told to raise its threads.
"""

from __future__ import annotations

import httpx
import pytest
from server_process import eventually

WARNING = "open streams hold"
#: The pump looks once a second (waitress.HEARTBEAT_INTERVAL): three looks.
LOOKS = 3.5


def test_thread_held_streams_warn_and_hub_streams_do_not(start_app):
    # Streams held by Waitress's threads: 2 of 4 threads leave fewer than
    # the headroom (4) free, so the warning comes.
    threaded = start_app({"THREADS": "4", "GS_DRAIN_DELAY_SECONDS": "5"})
    with httpx.Client(base_url=threaded.url, timeout=10) as client:
        responses = [
            client.send(client.build_request("GET", "/stream", params={"events": 50, "interval": 0.1}), stream=True)
            for _ in range(2)
        ]
        try:
            threaded.wait_for_log(WARNING, timeout=10)
        finally:
            for response in responses:
                response.close()

    # The hub's streams, more than Waitress's threads (8): none holds a
    # thread, so no warning (before, the 12 were counted against the 8).
    server = start_app(
        {"GS_STREAM_ADDR": "127.0.0.1:0", "GS_STREAM_SECRET": "sizing test", "THREADS": "8"}, script="hub_app.py"
    )
    with httpx.Client(timeout=10) as client:
        urls = [server.client.get("/url", params={"channel": f"c{n}"}).json()["url"] for n in range(12)]
        responses = [client.send(client.build_request("GET", url), stream=True) for url in urls]
        try:
            eventually(lambda: server.counts()["active"] == 12)
            # Reads the output for a few of the pump's looks: the line must
            # not come.
            with pytest.raises(AssertionError, match="no line matching"):
                server.wait_for_log(WARNING, timeout=LOOKS)
        finally:
            for response in responses:
                response.close()
