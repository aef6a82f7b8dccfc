"""Sinks that ship spans to log pipelines: structlog, ``logging``, JSON lines, sampling.

Every sink is a callable taking a span; add it with
``TimedSSLContext.add_sink()`` (or :func:`tlstiming.subscribe`). Sinks
dispatch on ``span.kind`` and read ``span.to_dict()``, so handshake spans and
request spans go through the same sinks. The OpenTelemetry sink lives in
:mod:`tlstiming.sinks.otel` (extra ``otel``). See ``docs/logging.md``.

A sink runs on the thread that finished the handshake, right after it.
:class:`BackgroundSink` is the one way off that thread: the log sinks'
``background=True`` (their default) is their work wrapped in one, and one
worker serves any chain of wrappers. Put :class:`Sampled` in front so that
dropped spans are never queued::

    ctx.add_sink(Sampled(StructlogSink(), rate=0.01, keep_slow_ms=500))  # one worker
"""

from __future__ import annotations

from tlstiming.sinks._flatten import (
    CONTEXT_KEYS,
    LOG_SCHEMA_VERSION,
    SpanLike,
    flatten,
    redact_url,
    tls_fields,
)
from tlstiming.sinks.background import BackgroundSink
from tlstiming.sinks.jsonl import JsonLinesSink
from tlstiming.sinks.logging import LoggingSink
from tlstiming.sinks.sampling import Sampled
from tlstiming.sinks.structlog import AddTLSFacts, StructlogSink, bind_tls

__all__ = [
    "CONTEXT_KEYS",
    "LOG_SCHEMA_VERSION",
    "AddTLSFacts",
    "BackgroundSink",
    "JsonLinesSink",
    "LoggingSink",
    "Sampled",
    "SpanLike",
    "StructlogSink",
    "bind_tls",
    "flatten",
    "redact_url",
    "tls_fields",
]
