"""Standard-library ``logging``: one record per span, fields in ``extra``.

The library configures nothing: no handler, no level, no ``basicConfig()``.
Records go to the logger you give (default ``tlstiming.spans``) and reach
whatever handlers and formatters the application set up. JSON formatters that
copy non-standard record attributes (python-json-logger and the like read
``record.__dict__``) pick up the flat keys as they are, dots included.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from tlstiming._recording.validate import count
from tlstiming.diagnosis import worst
from tlstiming.sinks._common import Emitter, pick_level, threshold_ns
from tlstiming.sinks._flatten import SpanLike, findings_of, flatten
from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.render import one_line

__all__ = ["LoggingSink"]

_RESERVED: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class LoggingSink(Emitter):
    """Log every span as one ``logging`` record with its flat fields in ``extra``.

    The message is one readable line
    (``TLS 1.3 example.com:443 38.2 ms [client_hello 0.2, ...] alpn=h2``).
    Nothing is flattened or formatted when the logger is not enabled for
    the span's level.

    Args:
        logger: a ``logging.Logger`` or a logger name.
        level: level of a normal span.
        error_level: level of a failed span.
        slow_ms: spans at least this long (milliseconds) are logged at
            ``slow_level`` (a failed span keeps ``error_level``).
        slow_level: level of a slow span.
        extra_key: put the fields under this one record attribute (a dict)
            instead of one attribute per field.
        background: wrap the sink in one :class:`BackgroundSink` (the
            default: the handshake only queues the span); ``False`` logs on
            the calling thread.

    Raises:
        TypeError: ``logger`` is neither a logger nor a name; a level is not an int.
        ValueError: for a negative (or NaN, or infinite) ``slow_ms`` or a
            reserved ``extra_key``.
    """

    __slots__ = ("_error_level", "_extra_key", "_level", "_logger", "_slow_level", "_slow_ns")

    def __init__(
        self,
        logger: logging.Logger | str = "tlstiming.spans",
        *,
        level: int = logging.INFO,
        error_level: int = logging.WARNING,
        slow_ms: float | None = None,
        slow_level: int = logging.WARNING,
        extra_key: str | None = None,
        background: bool = True,
    ) -> None:
        if extra_key in _RESERVED:
            raise ValueError(f"extra_key {extra_key!r} is a LogRecord attribute")
        if not isinstance(logger, str) and not all(
            callable(getattr(logger, method, None)) for method in ("isEnabledFor", "log")
        ):
            kind = type(logger).__name__
            raise TypeError(f"logger must be a logging.Logger or a logger name, not {kind}")
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._level = count("level", level)
        self._error_level = count("error_level", error_level)
        self._slow_ns = threshold_ns("slow_ms", slow_ms)
        self._slow_level = count("slow_level", slow_level)
        self._extra_key = extra_key
        self._wrap(background)

    def emit(self, span: SpanLike) -> None:
        """Log ``span``."""
        lowest = min(self._level, self._error_level, self._slow_level)
        if not self._logger.isEnabledFor(lowest):
            return  # nothing would be logged: nothing is diagnosed or flattened
        findings = findings_of(span)
        level = pick_level(
            span, self._level, self._error_level, self._slow_ns, self._slow_level, worst(findings)
        )
        if not self._logger.isEnabledFor(level):
            return
        fields = flatten(span, findings)
        extra: dict[str, Any]
        if self._extra_key is not None:
            extra = {self._extra_key: fields}
        else:
            extra = {(f"tlstiming.{k}" if k in _RESERVED else k): v for k, v in fields.items()}
        self._logger.log(level, "%s", message(span, fields), extra=extra)

    def __repr__(self) -> str:
        return f"<LoggingSink {self._logger.name!r}>"


def message(span: SpanLike, fields: dict[str, Any]) -> str:
    """One readable line for ``span`` (its flat ``fields`` serve kinds without a formatter).

    Its strings are escaped (a peer can write them); ``extra`` keeps them raw.
    """
    if isinstance(span, HandshakeSpan):
        return one_line(span)
    host = fields.get("server.address", "?")
    port = fields.get("server.port")
    where = escape(f"{host}:{port}" if port is not None else str(host))
    duration = span.duration_ns / 1e6
    parts = [escape(span.kind)]
    if "http.request.method" in fields:
        parts.append(escape(str(fields["http.request.method"])))
    parts += [where, f"{duration:.1f} ms"]
    if "http.response.status_code" in fields:
        parts.append(f"status={escape(str(fields['http.response.status_code']))}")
    if span.outcome != "ok":
        parts.append(f"error={escape(str(fields.get('error.type', '?')))}")
    return " ".join(parts)
