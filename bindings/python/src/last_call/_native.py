"""The ctypes binding to the runtime's C ABI (include/last_call.h).

Everything that touches ctypes lives here: finding the library, declaring
every function's argtypes and restype, turning status codes into
exceptions, and the callback trampolines. The rest of the package calls the
small Python functions at the bottom.

The library is loaded with ``ctypes.CDLL``, which releases the GIL for the
duration of every call, so a thread blocked in ``gs_wait_for_streams`` does
not hold up the rest of the interpreter.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import math
import os
import threading
from pathlib import Path
from typing import Callable, Dict, Optional

from .errors import (
    ConfigError,
    GracefulShutdownError,
    InvalidStateError,
    NativeError,
    NoActiveStreamError,
    TooManyStreamsError,
)

logger = logging.getLogger("last_call")

LIBRARY_ENV = "LAST_CALL_LIBRARY"
_STEM = "liblast_call"


def _candidates() -> list:
    """Where the library may be, in the order it is looked for."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return [Path(override)]
    # As installed by the wheel or the sdist: one plain file name for every
    # interpreter (the library has no CPython ABI in it).
    return [Path(__file__).resolve().parent / (_STEM + ".so")]


def _load() -> ctypes.CDLL:
    searched = []
    for path in _candidates():
        searched.append(str(path))
        if not path.exists():
            continue
        try:
            return ctypes.CDLL(str(path))
        except OSError as error:
            raise ImportError(f"last_call: cannot load {path}: {error}") from error
    where = ", ".join(searched)
    raise ImportError(
        f"last_call: the native library was not found (searched: {where}). "
        f"Install the package with pip (it builds the library), or set {LIBRARY_ENV} "
        "to the path of liblast_call.so."
    )


lib = _load()

# --- types ---------------------------------------------------------------

c_status = ctypes.c_int  # enum gs_status


class Config(ctypes.Structure):
    """struct gs_config."""

    _fields_ = [
        ("drain_delay_seconds", ctypes.c_double),
        ("shutdown_timeout_seconds", ctypes.c_double),
        ("close_notice_seconds", ctypes.c_double),
        ("exit_watchdog_seconds", ctypes.c_double),
        ("second_signal", ctypes.c_uint32),
        ("handle_sigint", ctypes.c_bool),
    ]


PHASE_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
HOOK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_double, ctypes.c_void_p)

# --- declarations: every function, its arguments and its result ----------

_SIGNATURES = {
    "gs_version": ([], ctypes.c_char_p),
    "gs_status_message": ([ctypes.c_uint32], ctypes.c_char_p),
    "gs_last_error_message": (
        [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        c_status,
    ),
    "gs_increment_active_streams": ([], c_status),
    "gs_decrement_active_streams": ([], c_status),
    "gs_active_streams": ([], ctypes.c_uint64),
    "gs_streams_started_total": ([], ctypes.c_uint64),
    "gs_streams_finished_total": ([], ctypes.c_uint64),
    "gs_set_draining": ([ctypes.c_bool], c_status),
    "gs_is_draining": ([], ctypes.c_bool),
    "gs_current_phase": ([], ctypes.c_int),
    "gs_wait_for_streams": ([ctypes.c_double], c_status),
    "gs_wait_for_phase": ([ctypes.c_uint32, ctypes.c_double], c_status),
    "gs_config_from_env": ([ctypes.POINTER(Config)], c_status),
    "gs_install_signal_handlers": ([ctypes.POINTER(Config)], c_status),
    "gs_begin_shutdown": ([], c_status),
    "gs_on_phase": (
        [PHASE_CALLBACK, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)],
        c_status,
    ),
    "gs_remove_phase_callback": ([ctypes.c_uint64], c_status),
    "gs_register_shutdown_hook": (
        [ctypes.c_char_p, HOOK_CALLBACK, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)],
        c_status,
    ),
    "gs_remove_shutdown_hook": ([ctypes.c_uint64], c_status),
    "gs_render_metrics": (
        [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        c_status,
    ),
}

for _name, (_argtypes, _restype) in _SIGNATURES.items():
    _function = getattr(lib, _name)
    _function.argtypes = _argtypes
    _function.restype = _restype

# --- status codes ----------------------------------------------------------

OK = 0
INVALID_ARGUMENT = 1
NO_ACTIVE_STREAM = 2
TOO_MANY_STREAMS = 3
SEQUENCE_STARTED = 4
TIMED_OUT = 5
ALREADY_INSTALLED = 6
INVALID_CONFIG = 7
BUFFER_TOO_SMALL = 8
NOT_FOUND = 11

_EXCEPTIONS = {
    INVALID_ARGUMENT: ValueError,
    NO_ACTIVE_STREAM: NoActiveStreamError,
    TOO_MANY_STREAMS: TooManyStreamsError,
    SEQUENCE_STARTED: InvalidStateError,
    ALREADY_INSTALLED: InvalidStateError,
    INVALID_CONFIG: ConfigError,
    NOT_FOUND: KeyError,
}


def last_error_message() -> str:
    buffer = ctypes.create_string_buffer(512)
    lib.gs_last_error_message(buffer, len(buffer), None)
    return buffer.value.decode("utf-8", "replace")


def check(status: int) -> int:
    """Raises the exception for a failing status; returns OK/TIMED_OUT."""
    if status in (OK, TIMED_OUT):
        return status
    message = last_error_message() or lib.gs_status_message(status).decode()
    exception_type = _EXCEPTIONS.get(status, NativeError)
    error = exception_type(message)
    if isinstance(error, GracefulShutdownError):
        error.status = status
    raise error


def seconds(timeout: Optional[float], name: str = "timeout") -> float:
    """A timeout as the C ABI takes it: None is no limit (infinity).
    NaN and negative values are passed on for the runtime to refuse."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    return float(timeout)


# --- callbacks -------------------------------------------------------------
#
# One trampoline per callback type, alive for the life of the module. The
# runtime is handed a small integer key as user_data; the key finds the
# Python callable in a registry, which keeps it alive for as long as the
# runtime may call it. An exception in a callback is logged, never lost and
# never allowed to unwind into the runtime.

_keys = itertools.count(1)
_registry_lock = threading.Lock()
_phase_callbacks: Dict[int, Callable[[int, int], None]] = {}
_hooks: Dict[int, Callable[[float], object]] = {}
_native_ids: Dict[int, int] = {}  # registry key -> runtime registration id


@PHASE_CALLBACK
def _phase_trampoline(from_phase: int, to_phase: int, key: Optional[int]) -> None:
    callback = _phase_callbacks.get(key or 0)
    if callback is None:
        return
    try:
        callback(from_phase, to_phase)
    except BaseException:  # noqa: BLE001 - nothing may unwind into the runtime
        logger.exception("last_call: phase callback %r failed", callback)


@HOOK_CALLBACK
def _hook_trampoline(remaining: float, key: Optional[int]) -> bool:
    hook = _hooks.get(key or 0)
    if hook is None:
        return False
    try:
        result = hook(remaining)
    except BaseException:  # noqa: BLE001 - nothing may unwind into the runtime
        logger.exception("last_call: shutdown hook %r failed", hook)
        return False
    return result is None or bool(result)


def _register(table: dict, callable_: Callable, native_register: Callable) -> int:
    """Keeps `callable_` alive in `table` under a new key, then registers the
    key with the runtime through `native_register(key, id_out)`; undone if
    the runtime refuses."""
    key = next(_keys)
    native_id = ctypes.c_uint64()
    with _registry_lock:
        table[key] = callable_
    try:
        check(native_register(key, ctypes.byref(native_id)))
    except BaseException:
        with _registry_lock:
            table.pop(key, None)
        raise
    with _registry_lock:
        _native_ids[key] = native_id.value
    return key


def add_phase_callback(callback: Callable[[int, int], None]) -> int:
    return _register(
        _phase_callbacks, callback, lambda key, out: lib.gs_on_phase(_phase_trampoline, key, out)
    )


def remove_phase_callback(key: int) -> bool:
    with _registry_lock:
        native_id = _native_ids.pop(key, None)
    if native_id is None:
        return False
    # When this returns the runtime is not calling it and never will again.
    lib.gs_remove_phase_callback(native_id)
    with _registry_lock:
        _phase_callbacks.pop(key, None)
    return True


def add_shutdown_hook(name: str, hook: Callable[[float], object]) -> int:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    encoded = name.encode("utf-8")
    return _register(
        _hooks, hook, lambda key, out: lib.gs_register_shutdown_hook(encoded, _hook_trampoline, key, out)
    )


def remove_shutdown_hook(key: int) -> bool:
    with _registry_lock:
        native_id = _native_ids.pop(key, None)
        hook = _hooks.pop(key, None)
    if native_id is None or hook is None:
        return False
    return lib.gs_remove_shutdown_hook(native_id) == OK


@atexit.register
def _unregister_callbacks() -> None:
    """No callback may reach into an interpreter that is finalizing."""
    for key in list(_native_ids):
        if key in _phase_callbacks:
            remove_phase_callback(key)
        else:
            remove_shutdown_hook(key)


def render_metrics(format_code: int) -> str:
    needed = ctypes.c_size_t()
    lib.gs_render_metrics(format_code, None, 0, ctypes.byref(needed))
    # Figures can grow between the two calls: retry with the size reported.
    for _ in range(4):
        buffer = ctypes.create_string_buffer(needed.value + 64)
        status = lib.gs_render_metrics(format_code, buffer, len(buffer), ctypes.byref(needed))
        if status == OK:
            return buffer.value.decode("utf-8")
        if status != BUFFER_TOO_SMALL:
            check(status)
    raise NativeError("metrics kept growing while being rendered")
