"""Handing finished spans to sinks without ever breaking a connection."""

from __future__ import annotations

import logging
from typing import Any

from tlstiming._recording.validate import callable_arg

__all__ = ["deliver", "global_sinks", "report", "subscribe", "unsubscribe"]

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


def deliver(owner: Any, span: Any) -> None:
    """Call every sink of ``owner`` (its ``_tlstiming_sinks``) and every global sink with ``span``.

    The one way a span reaches its sinks. A sink's ``Exception`` is logged
    (:func:`report`) and the next sink still runs; anything else propagates.
    """
    for sinks in (getattr(owner, "_tlstiming_sinks", ()), global_sinks):
        for sink in sinks:
            try:
                sink(span)
            except Exception:
                report(sink, span)


def report(sink: Any, span: Any) -> None:
    """Log the exception a sink just raised (call from its ``except`` block)."""
    _log.warning(
        "tlstiming: sink %r raised; span %s dropped for it", sink, span.span_id, exc_info=True
    )
