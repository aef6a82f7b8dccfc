"""The global opt-in: every ``ssl.SSLContext`` the process builds becomes timed.

``ssl.SSLContext`` itself is never rebound: ssl.py's own property setters
(``options``, ``verify_mode``, ...) call ``super(SSLContext, SSLContext)``
with the name looked up at call time, so a subclass bound to that name makes
them recurse forever. Instead the class's ``__new__`` is replaced: when the
class being built is exactly ``ssl.SSLContext`` it builds a
:class:`~tlstiming.TimedSSLContext` (a subclass, so Python still runs
``__init__`` and every ``isinstance`` check holds); any other class,
``TimedSSLContext`` and users' own subclasses included, is built as before.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any, Final

from tlstiming._recording.context import TimedSSLContext

__all__ = ["instrument", "instrumented", "uninstrument"]

_ORIGINAL_NEW: Final[Any] = vars(ssl.SSLContext)["__new__"]
_lock = threading.Lock()


def _timed_new(
    cls: type[ssl.SSLContext], protocol: int | None = None, *args: Any, **kwargs: Any
) -> Any:
    if cls is ssl.SSLContext:
        return TimedSSLContext.__new__(TimedSSLContext, protocol, *args, **kwargs)
    return _ORIGINAL_NEW(cls, protocol, *args, **kwargs)


_timed_new.__wrapped__ = _ORIGINAL_NEW  # type: ignore[attr-defined]


def instrument() -> None:
    """Make every ``ssl.SSLContext`` built from now on a :class:`~tlstiming.TimedSSLContext`.

    Covers code you don't control: ``ssl.create_default_context()``,
    urllib3, requests, asyncio, aiohttp, anything that constructs
    ``ssl.SSLContext(...)``. Their spans reach the sinks added with
    :func:`tlstiming.subscribe`. Contexts built before the call stay plain.
    Idempotent and thread-safe; undo with :func:`uninstrument`.
    """
    with _lock:
        if vars(ssl.SSLContext)["__new__"] is _ORIGINAL_NEW:
            ssl.SSLContext.__new__ = _timed_new  # type: ignore[method-assign]


def uninstrument() -> None:
    """Undo :func:`instrument`: contexts built from now on are plain again.

    Contexts built while instrumented stay timed. Idempotent and thread-safe.
    """
    with _lock:
        if vars(ssl.SSLContext)["__new__"] is _timed_new:
            ssl.SSLContext.__new__ = _ORIGINAL_NEW  # type: ignore[method-assign]


def instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return vars(ssl.SSLContext)["__new__"] is _timed_new
