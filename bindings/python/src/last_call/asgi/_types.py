"""The ASGI shapes the package's hosts pass around."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: An ASGI message, scope, and the callables that pass them.
Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The key a counted response sets in its scope, so that ``CountStreams``
#: does not count it a second time.
COUNTED_SCOPE_KEY = "last_call.stream_counted"
