"""Handing finished spans to sinks without ever breaking a connection."""

from __future__ import annotations

import logging
import sys
from typing import Any

from tlstiming._recording.validate import callable_arg

__all__ = ["deliver", "global_sinks", "report", "report_exception", "subscribe", "unsubscribe"]

_log = logging.getLogger("tlstiming")

global_sinks: tuple[Any, ...] = ()
"""Sinks that receive the spans of every context (the pytest plugin uses this)."""


def subscribe(sink: Any) -> None:
    """Deliver the spans of every TimedSSLContext to ``sink`` as well.

    Raises:
        TypeError: ``sink`` is not callable.
    """
    global global_sinks
    global_sinks = (*global_sinks, callable_arg("sink", sink))


def unsubscribe(sink: Any) -> None:
    """Undo :func:`subscribe`. Raises ``ValueError`` if ``sink`` was not subscribed."""
    global global_sinks
    sinks = list(global_sinks)
    sinks.remove(sink)
    global_sinks = tuple(sinks)


def deliver(context: Any, span: Any) -> None:
    """Call every sink of ``context`` and every global sink with ``span``."""
    sinks = getattr(context, "_tlstiming_sinks", ())
    if sinks:
        for sink in sinks:
            _call(sink, span)
    if global_sinks:
        for sink in global_sinks:
            _call(sink, span)


def _call(sink: Any, span: Any) -> None:
    try:
        sink(span)
    except Exception:
        report(sink, span)


def report_exception(sink: Any, span: Any, exc: BaseException | None) -> None:
    """Log the exception ``exc`` that ``sink`` raised for ``span``."""
    _log.warning(
        "tlstiming: sink %r raised; span %s dropped for it", sink, span.span_id, exc_info=exc
    )


def report(sink: Any, span: Any) -> None:
    """Log the exception a sink just raised (call from its ``except`` block)."""
    report_exception(sink, span, sys.exc_info()[1])
