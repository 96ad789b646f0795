"""The handoff scenario's verdict (tools/handoff_clients.check) on made-up
records: what a subscriber saw, held against the store's record of its
channel. A checker that passed everything would prove nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from handoff_clients import Subscriber, check
from store_record import StoredChannel, StoredEvent

STEPS = 3


def _data(kind: str, step: int | None = None, reason: str | None = None) -> str:
    data: dict = {"step": step} if step else {}
    if reason:
        data["reason"] = reason
    return json.dumps({"event_type": kind, "task_id": "t", "data": data})


def _store(final: str = "task_completed") -> StoredChannel:
    events = [StoredEvent("100-0", "task_event", _data("task_started"), "")]
    events += [StoredEvent(f"{100 + n}-0", "task_event", _data("progress_update", n), "") for n in (1, 2, 3)]
    last = StoredEvent("104-0", "task_event", _data(final, reason="shutdown" if final == "task_failed" else None), "f")
    return StoredChannel(epoch="abcd", events=[*events, last], final=last)


def _seen(entries: list[str], epoch: str = "abcd1234", final: str | None = "task_completed") -> Subscriber:
    kinds = {"100-0": ("task_started", None), "104-0": ("task_completed", None)}
    seen = Subscriber(final=final)
    for entry in entries:
        seen.ids.append(f"{epoch}-{entry}")
        seen.events.append(kinds.get(entry, ("progress_update", int(entry.split("-")[0]) - 100)))
    return seen


def test_every_event_once_in_the_stores_order_passes():
    verdict = check(_seen(["100-0", "101-0", "102-0", "103-0", "104-0"]), _store(), STEPS)
    assert verdict["exactly_once"] and verdict["true_ending"], verdict


def test_a_duplicate_after_a_resume_fails():
    verdict = check(_seen(["100-0", "101-0", "102-0", "102-0", "103-0", "104-0"]), _store(), STEPS)
    assert not verdict["exactly_once"] and verdict["duplicates"] == 1, verdict


def test_a_hole_fails():
    verdict = check(_seen(["100-0", "101-0", "103-0", "104-0"]), _store(), STEPS)
    assert not verdict["exactly_once"] and verdict["holes"] == 1, verdict


def test_ids_of_two_epochs_fail():
    seen = _seen(["100-0", "101-0", "102-0", "103-0", "104-0"])
    seen.ids[3] = "ffff0000-103-0"
    assert not check(seen, _store(), STEPS)["exactly_once"]


def test_an_ending_other_than_the_stores_is_not_the_true_one():
    seen = _seen(["100-0", "101-0", "102-0", "103-0", "104-0"])
    assert not check(seen, _store(final="task_failed"), STEPS)["true_ending"]
    missing = _seen(["100-0", "101-0", "102-0", "103-0"], final=None)
    verdict = check(missing, _store(), STEPS)
    assert not verdict["true_ending"] and not verdict["exactly_once"], verdict
