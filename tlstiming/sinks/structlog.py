"""structlog: one event per span, and TLS facts for the application's own events.

Three pieces:

- :class:`StructlogSink`: a sink; each span becomes one event named after its
  kind (``tls.handshake``, ``http.request``) with the flat fields of
  :func:`~tlstiming.sinks.flatten` as keys.
- :class:`AddTLSFacts`: a processor; an event logged with ``tls_span=span``
  gets that span's key facts (:data:`~tlstiming.sinks.CONTEXT_KEYS`) instead.
- :func:`bind_tls`: binds those facts in structlog's context variables for a
  block of code, so every event logged inside it carries them (needs
  ``structlog.contextvars.merge_contextvars`` in the processor chain, as in
  structlog's default configuration).

There is deliberately no "current connection" that the handshake sets by
itself: a handshake can finish on another thread or in an event-loop
callback, where a context variable set by the sink would not reach (or would
leak into) the code that logs. The application says which connection it
means, by passing the span or binding it.

structlog is imported when first needed, never by ``import tlstiming``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from tlstiming.diagnosis import worst
from tlstiming.sinks._common import Emitter, pick_level, threshold_ns
from tlstiming.sinks._flatten import CONTEXT_KEYS, SpanLike, findings_of, flatten, tls_fields

__all__ = ["AddTLSFacts", "StructlogSink", "bind_tls"]

_LEVELS = ("debug", "info", "warning", "error", "critical")


class StructlogSink(Emitter):
    """Log every span as one structlog event with flat keys.

    The event is the span's kind (``"tls.handshake"``); the keys are
    ``docs/schema.md``'s "Log event keys". The level is ``error_level`` for
    a failed span, else ``slow_level`` when ``slow_ms`` is set and reached,
    else ``level``.

    Args:
        logger: a structlog logger (anything with ``info()``, ``warning()``...);
            default ``structlog.get_logger("tlstiming")``, resolved against
            the configuration at each call, like any structlog proxy.
        level: method name for a normal span.
        error_level: method name for a failed span.
        slow_ms: spans at least this long (milliseconds) are logged at
            ``slow_level``.
        slow_level: method name for a slow span.
        background: wrap the sink in one :class:`BackgroundSink` (the
            default: the handshake only queues the span); ``False`` logs on
            the calling thread.

    Raises:
        TypeError: ``logger`` has no method for ``level``.
        ValueError: for an unknown level name or a negative (or NaN, or
            infinite) ``slow_ms``.
    """

    __slots__ = ("_error_level", "_level", "_logger", "_slow_level", "_slow_ns")

    def __init__(
        self,
        logger: Any = None,
        *,
        level: str = "info",
        error_level: str = "warning",
        slow_ms: float | None = None,
        slow_level: str = "warning",
        background: bool = True,
    ) -> None:
        for name in (level, error_level, slow_level):
            if name not in _LEVELS:
                raise ValueError(f"unknown level {name!r}; expected one of {_LEVELS}")
        self._slow_ns = threshold_ns("slow_ms", slow_ms)
        if logger is None:
            import structlog  # noqa: PLC0415

            logger = structlog.get_logger("tlstiming")
        if not _may_have(logger, level):
            kind = type(logger).__name__
            raise TypeError(f"logger must be a structlog logger with {level}(), not {kind}")
        self._logger = logger
        self._level = level
        self._error_level = error_level
        self._slow_level = slow_level
        self._wrap(background)

    def emit(self, span: SpanLike) -> None:
        """Log ``span``."""
        findings = findings_of(span)
        method = pick_level(
            span, self._level, self._error_level, self._slow_ns, self._slow_level, worst(findings)
        )
        getattr(self._logger, method)(span.kind, **flatten(span, findings))

    def __repr__(self) -> str:
        return f"<StructlogSink {self._logger!r}>"


def _may_have(logger: Any, method: str) -> bool:
    """Whether ``logger`` has ``method`` or may make it, looked up without side effects.

    A structlog lazy proxy makes its methods in ``__getattr__``, which binds
    (and may cache) the configuration: it is not called here.
    """
    lookup = inspect.getattr_static
    return any(
        found is not None
        for found in (lookup(logger, method, None), lookup(type(logger), "__getattr__", None))
    )


class AddTLSFacts:
    """A structlog processor: expand ``tls_span=`` into the span's key facts.

    ``log.info("fetched", tls_span=tlstiming.span_of(sock))`` becomes an
    event with ``tls.protocol.version``, ``tls.cipher``... The event's own
    keys win over the span's. A ``None`` span is dropped silently, so
    ``span_of()`` can be passed as is. Flattening reads the whole span: do not
    pass a span on a hot path's every event; bind it once with
    :func:`bind_tls` instead.

    Args:
        keys: the flat keys to add (default :data:`~tlstiming.sinks.CONTEXT_KEYS`).
        key: the event-dict key that carries the span.
    """

    __slots__ = ("_key", "_keys")

    def __init__(self, keys: Iterable[str] = CONTEXT_KEYS, *, key: str = "tls_span") -> None:
        self._keys = tuple(keys)
        self._key = key

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Replace ``event_dict[key]`` (a span) by its facts."""
        span = event_dict.pop(self._key, None)
        if span is not None:
            for name, value in tls_fields(span, self._keys).items():
                event_dict.setdefault(name, value)
        return event_dict


def bind_tls(span: SpanLike, keys: Iterable[str] = CONTEXT_KEYS) -> AbstractContextManager[None]:
    """Bind ``span``'s key facts to structlog's context variables for a ``with`` block.

    The span is flattened once, here; events logged inside the block (in the
    same thread or task) get the facts through
    ``structlog.contextvars.merge_contextvars``.

    Args:
        span: usually ``tlstiming.span_of(connection)``.
        keys: the flat keys to bind.

    Returns:
        A context manager; the previous values come back on exit.
    """
    import structlog.contextvars  # noqa: PLC0415

    return structlog.contextvars.bound_contextvars(**tls_fields(span, keys))
