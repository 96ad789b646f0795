"""The process's open-file limit, raised at a host's start.

Every connection the runtime's listeners hold (the hub's streams, the probe
port's clients) and every one the host's own server holds is a file
descriptor. Python keeps the soft limit it was given, often 1,024: a flood
of idle connections then exhausted it, and every listener of the process,
the probe port's included, stopped accepting. The soft limit may be raised
to the hard one without privilege, as the Rust example server does.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("last_call")

#: Above this the kernel's own ceiling (fs.nr_open, 1,048,576 by default)
#: refuses it; no host needs more.
_CEILING = 1 << 20


def raise_open_file_limit() -> int | None:
    """Raises the soft RLIMIT_NOFILE to the hard one (at most 1,048,576)
    and logs it; returns the new soft limit, or None if unchanged."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _CEILING if hard == resource.RLIM_INFINITY else min(hard, _CEILING)
    if soft != resource.RLIM_INFINITY and soft >= target:
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        logger.warning("last_call: the open-file limit stays at %d (raising it to %d failed: %s)", soft, target, error)
        return None
    logger.warning(
        "last_call: raised the open-file limit from %d to %d (each connection the listeners hold is one)", soft, target
    )
    return target
