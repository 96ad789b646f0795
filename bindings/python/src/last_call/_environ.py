"""GS_* values read from the environment the way the runtime reads them:
refused by name when they are not UTF-8 (``os.environ`` would hand over
surrogates, and a ``UnicodeEncodeError`` traceback naming nothing later),
an empty address an error rather than "off", and a secret's one trailing
line break trimmed (``kubectl create secret --from-file`` keeps the
file's) while any other white space at either end is refused.
"""

from __future__ import annotations

import os

from .errors import ConfigError


def text(name: str) -> str | None:
    """The value of ``name`` (None when unset); not UTF-8 is a ConfigError
    naming it."""
    raw = os.environb.get(name.encode("ascii"))
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{name} is not valid UTF-8") from None


def address(name: str) -> str | None:
    """A listener's ``host:port`` from ``name`` (None when unset); set but
    empty is a ConfigError naming it, not a listener silently off."""
    value = text(name)
    if value is not None and not value.strip():
        raise ConfigError(f"{name} is set but empty: give host:port, such as 0.0.0.0:8081, or unset it")
    return value


def secret(name: str) -> str | None:
    """A token or secret from ``name`` (None when unset or empty): one
    trailing line break trimmed; other white space at either end is a
    ConfigError naming it (the value itself is never shown)."""
    value = text(name)
    if value is None:
        return None
    if value.endswith("\n"):
        value = value[:-1].removesuffix("\r")
    if value != value.strip():
        raise ConfigError(
            f"{name} begins or ends with white space (one trailing line break is trimmed, no more; "
            f"{len(value)} characters)"
        )
    return value or None
