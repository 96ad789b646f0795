"""Arguments (seconds, phases, names) checked the same way for the real and
the no-op manager, without the native library."""

from __future__ import annotations

import math

from .errors import ArgumentTypeError, InvalidArgumentError
from .phase import Phase, SecondSignal


def seconds(timeout: float | None, name: str = "timeout") -> float:
    """A timeout as the C ABI takes it: None is no limit (infinity). A value
    of the wrong type is an ArgumentTypeError; NaN and negative values are
    passed on, for the runtime to refuse."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ArgumentTypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    return float(timeout)


def checked_seconds(timeout: float | None, name: str = "timeout") -> float:
    """As ``seconds``, refusing NaN and negative values as the runtime does."""
    value = seconds(timeout, name)
    if math.isnan(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative number of seconds or None, not {timeout!r}")
    return value


def phase(value: Phase | int) -> Phase:
    """A phase argument: a Phase or its int value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"phase must be a Phase, not {type(value).__name__}")
    try:
        return Phase(value)
    except ValueError:
        raise InvalidArgumentError(f"no phase has the value {value}") from None


def second_signal(value: SecondSignal | str) -> SecondSignal:
    """A second_signal argument: a SecondSignal or its name."""
    if isinstance(value, str):
        try:
            return SecondSignal[value.upper()]
        except KeyError:
            raise InvalidArgumentError(
                f"second_signal must be 'ignore', 'exit' or 'sigint_exits', not {value!r}"
            ) from None
    return SecondSignal(value)


_METRICS_FORMATS = {"prometheus": 0, "json": 1}


def metrics_format(name: str) -> int:
    """The gs_metrics_format code for "prometheus" or "json"."""
    if name not in _METRICS_FORMATS:
        raise InvalidArgumentError(f"format must be 'prometheus' or 'json', not {name!r}")
    return _METRICS_FORMATS[name]
