"""One status table, checked against the header; one exception hierarchy."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from last_call import (
    ArgumentTypeError,
    ConfigError,
    GracefulShutdownError,
    InvalidArgumentError,
    InvalidStateError,
    NoActiveStreamError,
    NotFoundError,
    ReentrantCallError,
    Status,
)
from last_call.status import EXCEPTIONS, error_for

HEADER = Path(__file__).resolve().parents[3] / "include" / "last_call.h"


def header_statuses() -> dict[str, int]:
    # The enum's body, whatever its underlying type's lines (uint32_t).
    body = re.search(r"^enum gs_status\b[^{]*\{(.*?)\};", HEADER.read_text(), re.S | re.M)
    assert body, "enum gs_status not found in the header"
    return {name: int(value) for name, value in re.findall(r"\b(GS_\w+) = (\d+)", body.group(1))}


def test_every_status_matches_the_header():
    in_header = header_statuses()
    prefix = {Status.OK: "GS_", Status.TIMED_OUT: "GS_"}
    ours = {prefix.get(member, "GS_ERR_") + member.name: int(member) for member in Status}
    assert ours == in_header


def test_every_failing_status_has_an_exception_in_the_hierarchy():
    failing = set(Status) - {Status.OK, Status.TIMED_OUT}
    assert set(EXCEPTIONS) == failing
    for status in failing:
        error = error_for(status, "message")
        assert isinstance(error, GracefulShutdownError)
        assert error.status == status


@pytest.mark.parametrize(
    ("error_type", "builtin"),
    [
        (InvalidArgumentError, ValueError),
        (NoActiveStreamError, ValueError),
        (ConfigError, ValueError),
        (ArgumentTypeError, TypeError),
        (NotFoundError, KeyError),
        (ReentrantCallError, InvalidStateError),
    ],
)
def test_errors_subclass_what_python_users_expect(error_type, builtin):
    assert issubclass(error_type, GracefulShutdownError)
    assert issubclass(error_type, builtin)


def test_the_runtime_s_invalid_argument_is_a_package_error(graceful_shutdown):
    with pytest.raises(InvalidArgumentError) as caught:
        graceful_shutdown.wait_for_streams(math.nan)
    assert caught.value.status == Status.INVALID_ARGUMENT
    with pytest.raises(ArgumentTypeError):
        graceful_shutdown.wait_for_streams("1")


def test_an_unknown_status_is_a_native_error():
    error = error_for(999, "what")
    assert isinstance(error, GracefulShutdownError) and isinstance(error, OSError)
    assert error.status == 999
