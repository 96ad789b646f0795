"""Every setting of last_call, under one name each, and the one rule that
decides its value.

A setting has one name, ``GS_<NAME>``, used alike as the environment
variable, as the key of a framework's configuration (Flask's
``app.config["GS_SHUTDOWN_TIMEOUT_SECONDS"]``, Django's ``settings.py``)
and, lower-cased without the prefix, as the keyword argument of the
functions that start a host (``serve(app, shutdown_timeout_seconds=6)``).
Its value is, in this order of precedence:

1. the keyword argument, when one is given;
2. the framework's configuration key;
3. the environment variable;
4. the default.

``SETTINGS`` below is the table of them all (name, kind, range, who reads
it). Most are read by the native runtime (``read_by="runtime"``): a value
given as a keyword or a configuration key is handed to it
(``gs_set_setting``) under the variable's name, so that it is parsed and
refused exactly as the variable would be, with the error naming it. The
runtime's own list of names (``gs_setting_names``) and this table are
held equal by the package's tests.

Nothing is silently ignored: an unknown ``GS_*`` key in a configuration or
in the environment is reported once by name with the closest known name;
an unknown keyword is a TypeError naming the closest; a ``LAST_CALL_*``
configuration key (the names before 0.2) is refused naming its new name;
and a value that arrives after what reads it has started (a worker's app
config under gunicorn, whose master read the setting long before) fails
the start naming the host and the setting.
"""

from __future__ import annotations

import difflib
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _environ
from .errors import ConfigError

__all__ = [
    "PREFIX",
    "SETTINGS",
    "Given",
    "Setting",
    "apply",
    "by_keyword",
    "by_name",
    "from_config",
    "from_keywords",
    "merge",
    "package_value",
    "read",
    "report_unknown_environment",
]

logger = logging.getLogger("last_call")

PREFIX = "GS_"
#: The prefix of the configuration keys before every setting had one name.
LEGACY_PREFIX = "LAST_CALL_"

#: What reads a setting: the native runtime, or this package.
RUNTIME = "runtime"
PACKAGE = "package"


@dataclass(frozen=True)
class Setting:
    """One setting: its name, the kind of value it takes, its range, its
    default (as the documentation says it), what reads it and when."""

    name: str
    #: seconds, count, status, choice, address, secret, text, path,
    #: origins, flag.
    kind: str
    #: Which part of the runtime reads it: sequence, probes, hub; or the
    #: package's own: waitress/gunicorn sizing, flask, hub URLs.
    group: str
    default: str
    meaning: str
    read_by: str = RUNTIME
    low: float | None = None
    high: float | None = None
    #: Exclusive bounds, where the runtime's own are: more than ``above``
    #: (a hub's durations, the heartbeat's staleness), less than ``below``
    #: (a hub's durations, under 10⁹ s).
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def keyword(self) -> str:
        """The keyword argument's name: the name without the prefix,
        lower-cased."""
        return self.name[len(PREFIX) :].lower()


def _s(name: str, kind: str, group: str, default: str, meaning: str, **extra: Any) -> Setting:
    return Setting(name=name, kind=kind, group=group, default=default, meaning=meaning, **extra)


#: A hub's durations: more than 0, less than 10⁹ s (the hub's own rule).
_HUB_SECONDS: dict[str, Any] = {"above": 0, "below": 1e9}

#: Every setting. The runtime's are in the order of docs/configuration.md.
SETTINGS: tuple[Setting, ...] = (
    # The shutdown sequence (read when the host installs the sequence).
    _s("GS_SHUTDOWN_TIMEOUT_SECONDS", "seconds", "sequence", "25", "from the signal to Stopped, at most", low=0),
    _s("GS_DRAIN_DELAY_SECONDS", "seconds", "sequence", "min(5, T/5)", "keep serving after the signal", low=0),
    _s(
        "GS_CLOSE_NOTICE_SECONDS",
        "seconds",
        "sequence",
        "min(5, T/5, T-budget)",
        "the window in which open streams end",
        low=0,
    ),
    _s(
        "GS_HOOK_BUDGET_SECONDS",
        "seconds",
        "sequence",
        "min(3, T/4, T-notice)",
        "the last part kept for the hooks",
        low=0,
    ),
    _s("GS_SECOND_SIGNAL", "choice", "sequence", "unset", "what a second signal does", choices=("ignore", "exit")),
    _s("GS_EXIT_WATCHDOG_SECONDS", "seconds", "sequence", "3", "end the process this long after Stopped", low=0),
    _s("GS_EXIT_WATCHDOG_STATUS", "status", "sequence", "70", "the watchdog's exit status", low=1, high=255),
    _s(
        "GS_SHUTDOWN_LOG",
        "flag",
        "sequence",
        "1 (this package; 0 in a C host)",
        "the runtime's few lines on stderr during a shutdown",
    ),
    # The probe listener (read when it starts).
    _s("GS_PROBE_ADDR", "address", "probes", "unset: none", "where the probe listener answers"),
    _s("GS_DRAIN_TOKEN", "secret", "probes", "unset: /drain answers 403", "the bearer token of POST /drain"),
    _s("GS_HEARTBEAT_STALE_SECONDS", "seconds", "probes", "10", "/healthz fails once the heartbeat is older", above=0),
    _s("GS_LISTEN_BACKLOG", "count", "probes", "1024", "connections queued for each listener", low=1, high=65_535),
    # The stream hub and its shared store (read when it starts).
    _s("GS_STREAM_ADDR", "address", "hub", "unset: no hub", "where the hub listens"),
    _s("GS_STREAM_SECRET", "secret", "hub", "required with the hub", "the key of subscription tokens"),
    _s("GS_STREAM_CORS_ORIGINS", "origins", "hub", "none", "origins allowed to subscribe"),
    _s("GS_STREAM_HEARTBEAT_SECONDS", "seconds", "hub", "15", "a heartbeat comment on an idle stream", **_HUB_SECONDS),
    _s("GS_STREAM_QUEUE_EVENTS", "count", "hub", "64", "how far a subscriber may fall behind", low=1, high=1_000_000),
    _s("GS_STREAM_STALL_SECONDS", "seconds", "hub", "5", "a subscriber this long behind is dropped", **_HUB_SECONDS),
    _s("GS_STREAM_STORE", "text", "hub", "memory:", "where channels live (redis://...)"),
    _s("GS_STREAM_STORE_CA_FILE", "path", "hub", "the system's roots", "the CAs of a rediss:// store"),
    _s("GS_STREAM_STORE_CLIENT_CERT_FILE", "path", "hub", "none", "the client certificate for mutual TLS"),
    _s("GS_STREAM_STORE_CLIENT_KEY_FILE", "path", "hub", "none", "its private key"),
    _s("GS_STREAM_PUBLISH_QUEUE_EVENTS", "count", "hub", "10000", "events waiting for the store", low=1, high=10**7),
    _s("GS_STREAM_HISTORY_EVENTS", "count", "hub", "100", "events kept per channel", low=1, high=1_000_000),
    _s("GS_STREAM_HISTORY_SECONDS", "seconds", "hub", "300", "how long an event stays in history", **_HUB_SECONDS),
    _s("GS_STREAM_MAX_CONNECTIONS", "count", "hub", "10000", "connections held at once", low=1, high=1_048_576),
    _s("GS_STREAM_MAX_CHANNELS", "count", "hub", "10000", "channels held at once", low=1, high=10**7),
    _s("GS_STREAM_MAX_CHANNEL_BYTES", "count", "hub", "1048576", "history bytes per channel", low=1, high=2**30),
    _s("GS_STREAM_THREADS", "count", "hub", "cores, at most 4", "threads writing the hub's streams", low=1, high=64),
    _s("GS_STREAM_IDLE_SECONDS", "seconds", "hub", "300", "an unused channel is forgotten", **_HUB_SECONDS),
    # Read by the package.
    _s(
        "GS_EXPECTED_STREAMS",
        "count",
        "sizing",
        "unset",
        "streams one process (a gunicorn worker) holds on threads of its own; 0: none (the hub holds them)",
        read_by=PACKAGE,
        low=0,
        high=1_000_000,
    ),
    _s(
        "GS_STREAM_PUBLIC_URL",
        "text",
        "hub-urls",
        "the hub's own address",
        "hub.subscribe_url's base",
        read_by=PACKAGE,
    ),
    _s("GS_HEALTH_BLUEPRINT", "flag", "flask", "true", "register the health blueprint (Flask)", read_by=PACKAGE),
    _s(
        "GS_DRAIN_ENDPOINT", "flag", "routes", "true", "false leaves out POST /drain on the app's port", read_by=PACKAGE
    ),
    _s(
        "GS_METRICS_ENDPOINT",
        "flag",
        "routes",
        "true",
        "false leaves out GET /metrics on the app's port",
        read_by=PACKAGE,
    ),
    _s("GS_URL_PREFIX", "text", "flask", "none", "mount the health blueprint under a prefix (Flask)", read_by=PACKAGE),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}
_BY_KEYWORD = {setting.keyword: setting for setting in SETTINGS}
#: The runtime's settings grouped by what reads them.
GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(s.name for s in SETTINGS if s.group == group and s.read_by == RUNTIME)
    for group in ("sequence", "probes", "hub")
}


def by_name(name: str) -> Setting | None:
    return _BY_NAME.get(name)


def by_keyword(keyword: str) -> Setting | None:
    return _BY_KEYWORD.get(keyword)


def runtime_names() -> tuple[str, ...]:
    """The names the native runtime reads, as this table has them."""
    return tuple(s.name for s in SETTINGS if s.read_by == RUNTIME)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest of ``candidates`` to ``word`` (difflib), if any is close."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    near = closest(word, candidates)
    return f"; did you mean {near}?" if near else ""


# ----- values --------------------------------------------------------------


def _number(value: Any, where: str, setting: Setting, whole: bool) -> str:
    what = "a whole number" if whole else "a number of seconds"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where} must be {what}, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if whole else float(text)
        except ValueError:
            raise ConfigError(f"{where} must be {what}, not {value!r}") from None
    else:
        if whole and not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where} must be {what}, not {value!r}")
        number = int(value) if whole or isinstance(value, int) else float(value)
        text = str(number)
    if isinstance(number, float) and math.isnan(number):
        raise ConfigError(f"{where} must be {what}, not NaN")
    if setting.low is not None and number < setting.low:
        raise ConfigError(f"{where} must be at least {setting.low:g}, not {value!r}")
    if setting.high is not None and number > setting.high:
        raise ConfigError(f"{where} must be at most {setting.high:g}, not {value!r}")
    if setting.above is not None and number <= setting.above:
        raise ConfigError(f"{where} must be more than {setting.above:g}, not {value!r}")
    if setting.below is not None and number >= setting.below:
        raise ConfigError(f"{where} must be less than {setting.below:g}, not {value!r}")
    return text


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def to_text(setting: Setting, value: Any, where: str) -> str:
    """``value`` (of a keyword or a configuration key) as the text the
    variable would hold; ConfigError naming ``where`` when it cannot be."""
    kind = setting.kind
    if kind == "seconds":
        return _number(value, where, setting, whole=False)
    if kind in ("count", "status"):
        return _number(value, where, setting, whole=True)
    if kind == "flag":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower()
        raise ConfigError(f"{where} must be True or False, not {value!r}")
    if kind == "choice":
        name = getattr(value, "name", value)  # an enum such as SecondSignal
        if isinstance(name, str) and name.strip().lower() in setting.choices:
            return name.strip().lower()
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, setting.choices))}, not {value!r}")
    if kind == "origins" and isinstance(value, (list, tuple)):
        if not all(isinstance(origin, str) for origin in value):
            raise ConfigError(f"{where} must be a list of origins (str), not {value!r}")
        return ",".join(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a str, not {type(value).__name__}")
    if kind == "secret" and not value:
        raise ConfigError(f"{where} must be a non-empty str")
    if "\x00" in value:
        raise ConfigError(f"{where} must not contain NUL")
    return value


def flag(text: str) -> bool:
    return text.strip().lower() in _TRUE


# ----- given values --------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """A setting given as a keyword or a configuration key: its text, and
    where it came from (for messages)."""

    setting: Setting
    text: str
    #: "keyword shutdown_timeout_seconds= of serve()", "app.config['GS_...']".
    source: str
    #: 2 for a keyword, 1 for a configuration key.
    rank: int


KEYWORD = 2
CONFIG = 1


def from_keywords(keywords: Mapping[str, Any], function: str) -> dict[str, Given]:
    """The settings among ``function``'s keyword arguments (None: not
    given). An unknown keyword is a TypeError naming the closest known."""
    given: dict[str, Given] = {}
    for keyword, value in keywords.items():
        setting = _BY_KEYWORD.get(keyword)
        if setting is None:
            raise TypeError(
                f"{function} got an unexpected keyword argument {keyword!r}{_did_you_mean(keyword, _BY_KEYWORD)}"
            )
        if value is None:
            continue
        where = f"{keyword}= of {function}"
        given[setting.name] = Given(setting, to_text(setting, value, where), f"keyword {where}", KEYWORD)
    return given


#: The configuration keys before 0.2 -> their names now.
LEGACY_KEYS = {
    "LAST_CALL_DRAIN_DELAY_SECONDS": "GS_DRAIN_DELAY_SECONDS",
    "LAST_CALL_SHUTDOWN_TIMEOUT_SECONDS": "GS_SHUTDOWN_TIMEOUT_SECONDS",
    "LAST_CALL_CLOSE_NOTICE_SECONDS": "GS_CLOSE_NOTICE_SECONDS",
    "LAST_CALL_EXIT_WATCHDOG_SECONDS": "GS_EXIT_WATCHDOG_SECONDS",
    "LAST_CALL_SECOND_SIGNAL": "GS_SECOND_SIGNAL",
    "LAST_CALL_DRAIN_TOKEN": "GS_DRAIN_TOKEN",
    "LAST_CALL_HEALTH_BLUEPRINT": "GS_HEALTH_BLUEPRINT",
    "LAST_CALL_DRAIN_ENDPOINT": "GS_DRAIN_ENDPOINT",
    "LAST_CALL_METRICS_ENDPOINT": "GS_METRICS_ENDPOINT",
    "LAST_CALL_URL_PREFIX": "GS_URL_PREFIX",
}

_reported_lock = threading.Lock()
_reported: set[str] = set()


def _report_once(key: str, message: str) -> None:
    with _reported_lock:
        if key in _reported:
            return
        _reported.add(key)
    logger.warning("%s", message)


def from_config(config: Mapping[str, Any], describe: str = "app.config[{key!r}]") -> dict[str, Given]:
    """The settings among a framework's configuration keys (``describe``
    formats a key for messages). A ``LAST_CALL_*`` key is refused naming
    its new name; an unknown ``GS_*`` key is reported once (a warning on
    the ``last_call`` logger) with the closest known name."""
    given: dict[str, Given] = {}
    for key in list(config.keys()):
        if not isinstance(key, str):
            continue
        where = describe.format(key=key)
        if key.startswith(LEGACY_PREFIX) and key not in ("LAST_CALL_DISABLED", "LAST_CALL_LIBRARY"):
            new = LEGACY_KEYS.get(key) or closest(PREFIX + key[len(LEGACY_PREFIX) :], _BY_NAME)
            instead = f"; its name is now {new}" if new else "; no setting has that name now"
            raise ConfigError(
                f"{where}: the LAST_CALL_* keys are no longer read (one name per setting, the environment "
                f"variable's){instead} (docs/configuration.md)"
            )
        if not key.startswith(PREFIX):
            continue
        setting = _BY_NAME.get(key)
        if setting is None:
            _report_once(
                f"config:{key}",
                f"last_call: {where} is not a setting of last_call and is ignored{_did_you_mean(key, _BY_NAME)}",
            )
            continue
        value = config[key]
        if value is None:
            continue
        given[key] = Given(setting, to_text(setting, value, where), where, CONFIG)
    return given


def merge(*layers: Mapping[str, Given]) -> dict[str, Given]:
    """Layers in order of precedence, the first winning."""
    merged: dict[str, Given] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return merged


def report_unknown_environment() -> None:
    """Reports, once per process and name, each ``GS_*`` environment
    variable that is no setting of last_call, with the closest known."""
    import os

    for name in sorted(os.environ):
        if name.startswith(PREFIX) and name not in _BY_NAME:
            _report_once(
                f"env:{name}",
                f"last_call: the environment variable {name} is not a setting of last_call and is ignored"
                f"{_did_you_mean(name, _BY_NAME)}",
            )


# ----- the values in force -------------------------------------------------


@dataclass
class _State:
    """What this process has handed to the runtime, and what has read it."""

    #: Values handed to the runtime (or kept for the package), by name.
    applied: dict[str, Given] = field(default_factory=dict)
    #: Names already read by a part that started, with the text it read
    #: (None: unset) and who read it ("gunicorn's master", "serve()").
    read: dict[str, tuple[str | None, str, str]] = field(default_factory=dict)


_lock = threading.Lock()
_state = _State()


def read(name: str) -> str | None:
    """The text in force for ``name``: the value handed over, else the
    environment's (None: unset). Not UTF-8 is a ConfigError naming it."""
    with _lock:
        given = _state.applied.get(name)
    if given is not None:
        return given.text
    return _environ.text(name)


def source_of(name: str) -> str:
    """Where the value in force for ``name`` came from, for messages."""
    with _lock:
        given = _state.applied.get(name)
    if given is not None:
        return given.source
    return "the environment" if _environ.text(name) is not None else "the default"


def address(name: str) -> str | None:
    """A listener's ``host:port`` in force for ``name`` (None: unset); set
    but empty is a ConfigError naming it, not a listener silently off."""
    text = read(name)
    if text is not None and not text.strip():
        raise ConfigError(
            f"{name} (from {source_of(name)}) is set but empty: give host:port, such as 0.0.0.0:8081, or unset it"
        )
    return text


def package_value(name: str) -> str | None:
    """The text in force for one of the package's own settings, checked
    against its kind (ConfigError naming it and where it came from)."""
    setting = _BY_NAME[name]
    text = read(name)
    if text is None:
        return None
    return to_text(setting, text, f"{name} (from {source_of(name)})")


def apply(given: Mapping[str, Given], *, native: bool = True) -> None:
    """Makes ``given`` the values in force: a runtime setting is handed to
    the native runtime (``native``), a package setting kept here. A value
    of lower precedence than one already in force (a configuration key
    after a keyword) does not replace it, and says so; a value for a part
    that has already read the setting with another value (the probe
    listener started, gunicorn's master running the sequence) is a
    ConfigError naming who read it and how to give the value instead."""
    from . import _native

    with _lock:
        for name, new in given.items():
            old = _state.applied.get(name)
            if old is not None and old.rank > new.rank and old.text != new.text:
                logger.warning("last_call: %s is given by %s, which wins over %s", name, old.source, new.source)
                continue
            already = _state.read.get(name)
            if already is not None and already[0] != new.text:
                text, source, reader = already
                held = "it has none" if text is None else f"it has {_shown(new.setting, text)}, from {source}"
                raise ConfigError(
                    f"{new.source} = {_shown(new.setting, new.text)} cannot take effect: {reader} read {name} "
                    f"before it ({held}). "
                    f"{_READ_EARLY_FIX.get(reader, _DEFAULT_FIX).format(name=name)}"
                )
            if native and new.setting.read_by == RUNTIME:
                _native.set_setting(name, new.text)
            _state.applied[name] = new


def _shown(setting: Setting, text: str) -> str:
    """A value for a message: a secret's length only."""
    return f"<{len(text)} characters>" if setting.kind == "secret" else repr(text)


#: How to give a setting that a host part reads before the app is loaded.
GUNICORN_MASTER = "gunicorn's master (which runs the pod's shutdown sequence and probe port)"
_DEFAULT_FIX = "Give {name} before that part starts (as a keyword, or in the configuration before it starts)."
_READ_EARLY_FIX = {
    GUNICORN_MASTER: (
        "The master never loads the app unless gunicorn runs with --preload: set {name} in the environment "
        "(the Deployment, or gunicorn's --env/raw_env), or run gunicorn with --preload."
    ),
}


def mark_read(names: Iterable[str], reader: str) -> None:
    """Records that ``reader`` (a host part that has started) read
    ``names`` with the values in force now: a later value that differs is
    refused (``apply``)."""
    with _lock:
        for name in names:
            given = _state.applied.get(name)
            text = given.text if given is not None else _environ.text(name)
            source = given.source if given is not None else ("the environment" if text is not None else "the default")
            _state.read.setdefault(name, (text, source, reader))


def was_read(name: str) -> str | None:
    """Who read ``name`` already (None: nothing has)."""
    with _lock:
        already = _state.read.get(name)
    return already[2] if already is not None else None


def applied() -> dict[str, Given]:
    with _lock:
        return dict(_state.applied)


def forget(names: Iterable[str] | None = None) -> None:
    """Forgets who read ``names`` (all: None), as in a forked worker that
    reads them again for itself, or in the testing reset (which also
    forgets the values handed over)."""
    global _state
    with _lock:
        if names is None:
            _state = _State()
            with _reported_lock:
                _reported.clear()
            return
        for name in names:
            _state.read.pop(name, None)


def take(given: Mapping[str, Given], *, native: bool) -> None:
    """A framework integration's settings (keywords over its configuration
    keys): made the values in force (``apply``) and, with the native
    runtime, checked at once (with the rest in force) by the runtime's own
    rules, so that a bad
    value stops the app where it is built, its message naming the setting
    and where it was given."""
    if not native:
        return
    apply(given)
    from .manager import validate_environment

    try:
        validate_environment()
    except ConfigError as error:
        named = [g.source for name, g in given.items() if name in str(error)]
        raise ConfigError(f"{error}" + (f" (given by {', '.join(named)})" if named else "")) from None


def sequence_installed() -> bool:
    """Whether a host has installed the runtime's handling of SIGTERM in
    this process (Waitress's serve, gunicorn, the ASGI lifespan, a call of
    ``install_signal_handlers`` or ``handle_sigterm``)."""
    return was_read("GS_SHUTDOWN_TIMEOUT_SECONDS") is not None
