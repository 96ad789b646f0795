"""The ctypes binding to the runtime's C ABI (include/last_call.h).

Everything that touches ctypes lives here: finding and loading the library
(lazily, on the first real call), declaring every function's argtypes and
restype, turning status codes into exceptions, and the callback
trampolines.

The library is loaded with ``ctypes.CDLL``, which releases the GIL for the
duration of every call, so a thread blocked in ``gs_wait_for_streams`` does
not hold up the rest of the interpreter.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from . import _exit
from ._version import __version__
from .errors import LibraryLoadError, NativeError
from .status import Status, error_for

logger = logging.getLogger("last_call")

LIBRARY_ENV = "LAST_CALL_LIBRARY"
_STEM = "liblast_call"


def _candidates() -> list[Path]:
    """Where the library may be, in the order it is looked for."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return [Path(override)]
    # As installed by the wheel or the sdist: one plain file name for every
    # interpreter (the library has no CPython ABI in it).
    return [Path(__file__).resolve().parent / (_STEM + ".so")]


# --- types ---------------------------------------------------------------

c_status = ctypes.c_uint32  # gs_status: typedef uint32_t


class Config(ctypes.Structure):
    """struct gs_config, its ``size`` set to this mirror's (the struct can
    grow: the library reads and writes only the fields ``size`` covers)."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("drain_delay_seconds", ctypes.c_double),
        ("shutdown_timeout_seconds", ctypes.c_double),
        ("close_notice_seconds", ctypes.c_double),
        ("exit_watchdog_seconds", ctypes.c_double),
        ("second_signal", ctypes.c_uint32),
        ("handle_sigint", ctypes.c_uint8),
        ("hook_budget_seconds", ctypes.c_double),
        ("exit_watchdog_status", ctypes.c_int32),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.size = ctypes.sizeof(self)


PHASE_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
READINESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_uint8, ctypes.c_void_p)
HOOK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_uint8, ctypes.c_double, ctypes.c_void_p)

# --- declarations: every function, its arguments and its result ----------
#
# Written out here, and held to include/last_call.h by
# tests/test_native_header.py (names, argument and result types, the
# callback types and gs_config's fields): a difference fails the tests.

_SIGNATURES: dict[str, tuple[list[Any], Any]] = {
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
    "gs_work_begin": ([], c_status),
    "gs_set_worker_processes": ([ctypes.c_uint32], c_status),
    "gs_work_end": ([], c_status),
    "gs_active_work": ([], ctypes.c_uint64),
    "gs_set_draining": ([ctypes.c_uint8], c_status),
    "gs_is_draining": ([], ctypes.c_bool),
    "gs_current_phase": ([], ctypes.c_int),
    "gs_wait_for_streams": ([ctypes.c_double], c_status),
    "gs_wait_for_phase": ([ctypes.c_uint32, ctypes.c_double], c_status),
    "gs_config_from_env": ([ctypes.POINTER(Config)], c_status),
    "gs_config_resolve": ([ctypes.POINTER(Config)], c_status),
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
    "gs_testing_reset": ([], c_status),
    "gs_start_probe_listener": (
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        c_status,
    ),
    "gs_heartbeat": ([], None),
    "gs_add_readiness_check": (
        [ctypes.c_char_p, READINESS_CALLBACK, ctypes.c_void_p, ctypes.c_double, ctypes.POINTER(ctypes.c_uint64)],
        c_status,
    ),
    "gs_remove_readiness_check": ([ctypes.c_uint64], c_status),
    "gs_configure": ([ctypes.POINTER(Config)], c_status),
    "gs_arm_exit_watchdog": ([], c_status),
    "gs_stream_end_in": ([ctypes.c_uint32, ctypes.POINTER(ctypes.c_double)], c_status),
    "gs_stream_ending_sent": ([ctypes.c_uint32], c_status),
    "gs_set_shutdown_log": ([ctypes.c_uint8], c_status),
    "gs_set_reconnect_spread": ([ctypes.c_uint32], c_status),
    "gs_hub_start": (
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        c_status,
    ),
    "gs_hub_publish": (
        [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_uint32,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ],
        c_status,
    ),
    "gs_hub_send": (
        [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p],
        ctypes.c_int64,
    ),
    "gs_hub_close_channel": (
        [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_bool)],
        c_status,
    ),
    "gs_hub_set_final_event": ([ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_char_p], c_status),
    "gs_hub_subscribe_token": (
        [ctypes.c_char_p, ctypes.c_double, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        c_status,
    ),
    "gs_hub_slow_clients_disconnected_total": ([], ctypes.c_uint64),
    "gs_host_exiting": ([ctypes.c_double], c_status),
    "gs_setting_names": ([ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)], c_status),
    "gs_set_setting": ([ctypes.c_char_p, ctypes.c_char_p], c_status),
    "gs_pod_figures_share": ([ctypes.c_uint32], c_status),
    "gs_pod_figures_join": ([ctypes.c_uint32], c_status),
    "gs_pod_figures_release": ([ctypes.c_uint32], c_status),
}

# --- loading -------------------------------------------------------------

_lib: ctypes.CDLL | None = None
_load_lock = threading.Lock()


def _open(path: Path) -> ctypes.CDLL:
    """Opens the library at ``path`` and declares every function, after
    checking that it is the version this package was built for."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise LibraryLoadError(f"last_call: cannot load {path}: {error}") from error
    try:
        version_function = lib.gs_version
    except AttributeError:
        found = "unknown (it has no gs_version)"
    else:
        version_function.argtypes = []
        version_function.restype = ctypes.c_char_p
        found = (version_function() or b"").decode("utf-8", "replace")
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if found != __version__ or missing:
        lacks = f"; it lacks {', '.join(missing)}" if missing else ""
        raise LibraryLoadError(
            f"last_call: {path} is the native library version {found}, but this package is "
            f"version {__version__}{lacks}. Reinstall the package with pip (it builds the "
            f"matching library), or point {LIBRARY_ENV} at a library of version {__version__}."
        )
    for name, (argtypes, restype) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
    return lib


def _load() -> ctypes.CDLL:
    searched = []
    for path in _candidates():
        searched.append(str(path))
        if path.exists():
            return _open(path)
    where = ", ".join(searched)
    raise LibraryLoadError(
        f"last_call: the native library was not found (searched: {where}). "
        f"Install the package with pip (it builds the library), or set {LIBRARY_ENV} "
        f"to the path of liblast_call.so (version {__version__})."
    )


def library() -> ctypes.CDLL:
    """The native library, loaded on the first call (LibraryLoadError, an
    ImportError, if it is missing or of another version)."""
    global _lib
    lib = _lib
    if lib is None:
        with _load_lock:
            if _lib is None:
                _lib = _load()
                # No runtime thread may enter Python once it finalizes.
                _exit.arm(_lib)
            lib = _lib
    return lib


def function(name: str) -> Any:
    """A native function by name; NativeError if this library lacks it."""
    lib = library()
    if not hasattr(lib, name):
        raise NativeError(f"last_call: the native library lacks {name}; it is older than this package")
    return getattr(lib, name)


def is_loaded() -> bool:
    """Whether this process has loaded the library (and so may have state
    in the runtime)."""
    return _lib is not None


# --- status codes ----------------------------------------------------------


def last_error_message() -> str:
    buffer = ctypes.create_string_buffer(512)
    library().gs_last_error_message(buffer, len(buffer), None)
    return buffer.value.decode("utf-8", "replace")


def check(status: int) -> int:
    """Raises the exception for a failing status; returns OK or TIMED_OUT."""
    if status == Status.OK or status == Status.TIMED_OUT:
        return status
    message = last_error_message() or library().gs_status_message(status).decode()
    raise error_for(status, message)


# --- callbacks -------------------------------------------------------------
#
# One trampoline per callback type, alive for the life of the module. The
# runtime is handed a small integer key as user_data; the key finds the
# Python callable in its registry, which keeps it alive for as long as the
# runtime may call it. An exception in a callback is logged, never lost and
# never allowed to unwind into the runtime.

PhaseCallback = Callable[[int, int], None]
Hook = Callable[[float], object]


class _Registry:
    """The Python side of one kind of registration: key -> (callable,
    runtime id)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[Callable[..., Any], int]] = {}

    def get(self, key: int) -> Callable[..., Any] | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def add(self, callable_: Callable[..., Any], native_register: Callable[[int, Any], int]) -> int:
        """Keeps ``callable_`` under a new key, then registers the key with
        the runtime through ``native_register(key, id_out)``; undone if the
        runtime refuses."""
        key = next(_keys)
        native_id = ctypes.c_uint64()
        with self._lock:
            self._entries[key] = (callable_, 0)
        try:
            check(native_register(key, ctypes.byref(native_id)))
        except BaseException:
            with self._lock:
                self._entries.pop(key, None)
            raise
        with self._lock:
            self._entries[key] = (callable_, native_id.value)
        return key

    def remove(self, key: int, native_remove: Callable[[int], int]) -> bool:
        """Unregisters ``key`` from the runtime, then forgets the callable
        (the runtime no longer calls it once removal returns). False when
        the runtime did not know it."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return False
        status = native_remove(entry[1])
        with self._lock:
            self._entries.pop(key, None)
        if status == Status.NOT_FOUND:
            return False
        check(status)
        return True

    def keys(self) -> list[int]:
        with self._lock:
            return list(self._entries)

    def forget_all(self) -> None:
        """Drops every callable, once the runtime has dropped them all."""
        with self._lock:
            self._entries.clear()


_keys = itertools.count(1)
phase_callbacks = _Registry("phase callback")
shutdown_hooks = _Registry("shutdown hook")


def _call_phase_callback(from_phase: int, to_phase: int, key: int | None) -> None:
    callback = phase_callbacks.get(key or 0)
    if callback is None:
        return
    try:
        callback(from_phase, to_phase)
    except BaseException:
        logger.exception("last_call: phase callback %r failed", callback)


def _call_hook(remaining: float, key: int | None) -> bool:
    hook = shutdown_hooks.get(key or 0)
    if hook is None:
        return False
    try:
        result = hook(remaining)
    except BaseException:
        logger.exception("last_call: shutdown hook %r failed", hook)
        return False
    return result is None or bool(result)


readiness_checks = _Registry("readiness check")


def _call_readiness_check(key: int | None) -> bool:
    check_ = readiness_checks.get(key or 0)
    if check_ is None:
        return False
    try:
        return bool(check_())
    except BaseException:
        logger.exception("last_call: readiness check %r failed", check_)
        return False


_readiness_trampoline = READINESS_CALLBACK(_call_readiness_check)
_phase_trampoline = PHASE_CALLBACK(_call_phase_callback)
_hook_trampoline = HOOK_CALLBACK(_call_hook)


def add_phase_callback(callback: PhaseCallback) -> int:
    lib = library()
    return phase_callbacks.add(callback, lambda key, out: int(lib.gs_on_phase(_phase_trampoline, key, out)))


def remove_phase_callback(key: int) -> bool:
    return phase_callbacks.remove(key, library().gs_remove_phase_callback)


def add_shutdown_hook(name: str, hook: Hook) -> int:
    encoded = name.encode("utf-8")
    lib = library()
    return shutdown_hooks.add(
        hook, lambda key, out: int(lib.gs_register_shutdown_hook(encoded, _hook_trampoline, key, out))
    )


def remove_shutdown_hook(key: int) -> bool:
    return shutdown_hooks.remove(key, library().gs_remove_shutdown_hook)


def add_readiness_check(name: str, check_: Callable[[], object], timeout: float) -> int:
    """Registers ``check_`` with the native probe listener's ``/readyz``."""
    encoded = name.encode("utf-8")
    lib = library()
    return readiness_checks.add(
        check_,
        lambda key, out: int(lib.gs_add_readiness_check(encoded, _readiness_trampoline, key, timeout, out)),
    )


def remove_readiness_check(key: int) -> bool:
    return readiness_checks.remove(key, library().gs_remove_readiness_check)


def start_probe_listener(addr: str | None) -> str:
    """Starts the native probe listener; its ``host:port``."""
    buffer = ctypes.create_string_buffer(128)
    encoded = None if addr is None else addr.encode("utf-8")
    check(library().gs_start_probe_listener(encoded, buffer, len(buffer), None))
    return buffer.value.decode("utf-8")


def render_metrics(format_code: int) -> str:
    lib = library()
    needed = ctypes.c_size_t()
    lib.gs_render_metrics(format_code, None, 0, ctypes.byref(needed))
    # Figures can grow between the two calls: retry with the size reported.
    for _ in range(4):
        buffer = ctypes.create_string_buffer(needed.value + 64)
        status = lib.gs_render_metrics(format_code, buffer, len(buffer), ctypes.byref(needed))
        if status == Status.OK:
            return buffer.value.decode("utf-8")
        if status != Status.BUFFER_TOO_SMALL:
            check(status)
    raise NativeError("metrics kept growing while being rendered")


def setting_names() -> list[str]:
    """Every GS_* setting the native library reads (gs_setting_names)."""
    lib = library()
    needed = ctypes.c_size_t()
    lib.gs_setting_names(None, 0, ctypes.byref(needed))
    buffer = ctypes.create_string_buffer(needed.value + 1)
    check(lib.gs_setting_names(buffer, len(buffer), ctypes.byref(needed)))
    return buffer.value.decode("utf-8").splitlines()


def set_setting(name: str, value: str | None) -> None:
    """Hands a GS_* setting's value to the runtime, over its environment
    variable (None: the environment's again)."""
    check(library().gs_set_setting(name.encode("utf-8"), None if value is None else value.encode("utf-8")))
