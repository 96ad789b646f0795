"""Each measured pitfall of counting WSGI streams, against a real Waitress
server in a child process, checked with the stream counts before and after."""

from __future__ import annotations

import httpx
import httpx_sse
from server_process import eventually


def test_a_stream_read_to_its_end_is_counted_exactly_once(app_server):
    before = app_server.counts()
    with httpx_sse.connect_sse(app_server.client, "GET", "/stream?events=3&interval=0.05") as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["x-accel-buffering"] == "no"
        assert source.response.headers["cache-control"] == "no-cache"
        seen = [(event.event, event.data) for event in source.iter_sse()]
    assert seen == [("tick", "1"), ("tick", "2"), ("tick", "3"), ("done", "end")]
    after = eventually(lambda: (c := app_server.counts())["finished"] == before["finished"] + 1 and c)
    assert after["started"] == before["started"] + 1
    assert after["active"] == 0


def test_a_stream_is_active_while_it_is_being_read(app_server):
    with httpx_sse.connect_sse(app_server.client, "GET", "/stream?events=0&interval=0.05") as source:
        events = source.iter_sse()
        next(events)
        assert app_server.counts()["active"] == 1
    eventually(lambda: app_server.counts()["active"] == 0)


def test_head_is_never_counted(app_server):
    before = app_server.counts()
    response = app_server.client.head("/stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    # A GET right after is counted: the HEAD's non-count is not a broken counter.
    with httpx_sse.connect_sse(app_server.client, "GET", "/stream?events=1&interval=0.01") as source:
        list(source.iter_sse())
    after = eventually(lambda: (c := app_server.counts())["finished"] == before["finished"] + 1 and c)
    assert after["started"] == before["started"] + 1
    assert after["active"] == 0


def test_an_after_request_hook_that_raises_leaves_no_count(app_server):
    before = app_server.counts()
    response = app_server.client.get("/after-request-raises")
    assert response.status_code == 500
    after = app_server.counts()
    assert after == before


def test_a_client_that_disconnects_mid_stream_is_uncounted(app_server):
    before = app_server.counts()
    client = httpx.Client(base_url=app_server.url, timeout=10)
    with httpx_sse.connect_sse(client, "GET", "/stream?events=0&interval=0.05") as source:
        events = source.iter_sse()
        next(events)
        next(events)
        assert app_server.counts()["active"] == before["active"] + 1
    client.close()  # the socket goes away mid-stream
    after = eventually(lambda: (c := app_server.counts())["active"] == before["active"] and c)
    assert after["finished"] == before["finished"] + 1
    assert after["started"] == before["started"] + 1


def test_a_generator_that_raises_is_uncounted_once(app_server):
    before = app_server.counts()
    try:
        with httpx_sse.connect_sse(app_server.client, "GET", "/raising-stream") as source:
            received = [event.data for event in source.iter_sse()]
    except httpx.HTTPError:
        received = ["(connection ended by the failure)"]
    assert received
    after = eventually(lambda: (c := app_server.counts())["finished"] == before["finished"] + 1 and c)
    assert after["started"] == before["started"] + 1
    assert after["active"] == 0
    assert app_server.wait_for_log("the generator failed mid-stream")


def test_a_response_that_is_not_a_stream_passes_through_uncounted(app_server):
    before = app_server.counts()
    response = app_server.client.get("/not-a-stream")
    assert response.status_code == 200
    assert response.text == "plain"
    assert "x-accel-buffering" not in response.headers
    assert app_server.counts() == before


def test_many_concurrent_streams_return_to_zero(app_server):
    import concurrent.futures

    def read_one(_):
        with httpx.Client(base_url=app_server.url, timeout=10) as client:
            with httpx_sse.connect_sse(client, "GET", "/stream?events=5&interval=0.02") as source:
                return len(list(source.iter_sse()))

    before = app_server.counts()
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(read_one, range(12))) == [6] * 12
    after = eventually(lambda: (c := app_server.counts())["finished"] == before["finished"] + 12 and c)
    assert after["active"] == 0
