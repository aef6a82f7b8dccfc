"""Spans as flat log events: one level of scalar fields, durations in milliseconds (pure).

Every sink that writes log events (structlog, stdlib ``logging``, the OTel
attributes) goes through :func:`flatten`, so the field names are the same
everywhere. A handshake or request span is read through its table
(:mod:`tlstiming.spans.fields`), the one ``to_dict()`` is built from: no
nested dict in between. Other span-likes (a later kind, a stand-in) go
through ``to_dict()`` and :func:`flatten_dict`, which applies the same rules
by key. The rules are versioned by :data:`LOG_SCHEMA_VERSION` and documented
in ``docs/schema.md`` ("Log event keys") and ``docs/logging.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from tlstiming.diagnosis import Finding, diagnose
from tlstiming.spans.export import HANDSHAKE
from tlstiming.spans.fields import LOG_SCHEMA_VERSION, Table, ms, ms_key, redact_url
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.protocols import SpanLike
from tlstiming.spans.request import RequestSpan
from tlstiming.spans.request_export import REQUEST

__all__ = [
    "CONTEXT_KEYS",
    "FINDINGS_KEY",
    "LOG_SCHEMA_VERSION",
    "SpanLike",
    "findings_of",
    "flatten",
    "flatten_dict",
    "redact",
    "redact_url",
    "table_of",
    "tls_fields",
]

_log = logging.getLogger("tlstiming")

CONTEXT_KEYS: Final = (
    "tls.handshake.span_id",
    "server.address",
    "tls.protocol.version",
    "tls.cipher",
    "tls.curve",
    "tls.next_protocol",
    "tls.resumed",
    "tls.handshake.duration_ms",
)
"""The flat keys :func:`tls_fields` copies into other log events by default."""

_SKIPPED: Final = frozenset(
    {"tlstiming.schema", "tlstiming.messages", "url.query", "url.fragment", "url.user_info"}
)
_SCALARS: Final = (str, int, float, bool)
_PRIMARY: Final = frozenset({"tlstiming.handshake"})


def table_of(span: object) -> Table[Any, Any] | None:
    """The export table of ``span``'s class, ``None`` for a kind with none."""
    if isinstance(span, HandshakeSpan):
        return HANDSHAKE
    if isinstance(span, RequestSpan):
        return REQUEST
    return None


def flatten(span: SpanLike, findings: Sequence[Finding] = ()) -> dict[str, Any]:
    """Return the flat log fields of ``span`` (unknown values left out).

    A span with a ``handshake`` attribute (a request span that opened its
    connection) gets the handshake's fields too. Given ``findings`` (the
    sinks pass :func:`findings_of` the span), ``tls.findings`` holds their ids.
    """
    table = table_of(span)
    if table is not None:
        fields = table.flat(span)
    else:
        data = span.to_dict()
        handshake = getattr(span, "handshake", None)
        if handshake is not None and data.get("tlstiming.handshake") is None:
            data = {**data, "tlstiming.handshake": handshake.to_dict(timeline=False)}
        fields = flatten_dict(data)
    ids = ",".join(f.id for f in findings)
    if ids:
        fields[FINDINGS_KEY] = ids
    return fields


FINDINGS_KEY: Final = "tls.findings"


def findings_of(span: SpanLike) -> tuple[Finding, ...]:
    """The findings of a handshake or request span; none for other kinds, or if diagnosis fails.

    A sink never fails a span over its diagnosis: a failing rule is logged by
    the engine, anything else here is caught and logged too.
    """
    if not isinstance(span, (HandshakeSpan, RequestSpan)):
        return ()  # a later kind, or a stand-in: no rules for it
    try:
        return diagnose(span)
    except Exception:
        _log.exception("tlstiming: could not diagnose span %s", getattr(span, "span_id", "?"))
        return ()


def flatten_dict(data: Mapping[str, Any], *, drop_none: bool = True) -> dict[str, Any]:
    """Flatten a span dict (``span.to_dict()``) into one level of scalar fields.

    The rules by key, for kinds with no table; a handshake or request span's
    table gives the same fields straight from the span (:func:`flatten`).

    Args:
        data: a span's ``to_dict()``.
        drop_none: leave out keys whose value is unknown (``None``).

    Returns:
        Field name -> str, int, float or bool (or ``None`` if kept), in a
        stable order: the order of ``data``'s keys.
    """
    out: dict[str, Any] = {"tlstiming.log_schema": LOG_SCHEMA_VERSION}
    _merge(out, data)
    if drop_none:
        return {k: v for k, v in out.items() if v is not None}
    return out


def _merge(out: dict[str, Any], data: Mapping[str, Any], nested: bool = False) -> None:
    kind = str(data.get("tlstiming.kind") or "span")
    prefix = kind.split(".", 1)[0]
    put = out.setdefault if nested else out.__setitem__
    for key, value in data.items():
        if key in _SKIPPED:
            continue
        if key == "span.id" and nested:
            put(f"{kind}.span_id", value)
        elif key in ("duration_ns", "cpu_ns"):
            put(ms_key(kind, key), ms(value))
        elif key == "tlstiming.verifications":
            for check in value or ():
                put(f"{prefix}.verify.{check['name']}", check.get("outcome"))
                put(f"{prefix}.verify.{check['name']}.reason", check.get("reason"))
        elif key == "tlstiming.phases":
            for phase in value or ():
                put(f"{prefix}.phase.{phase['name']}_ms", ms(phase.get("duration_ns")))
        elif isinstance(value, Mapping):
            if key in _PRIMARY:  # the handshake inside a request span: its facts join
                _merge(out, value, nested=True)
            elif "tlstiming.kind" in value:  # another span inside (a proxy's handshake)
                put(f"{key}.span_id", value.get("span.id"))
                put(f"{key}.duration_ms", ms(value.get("duration_ns")))
        elif isinstance(value, list | tuple):
            if all(isinstance(v, _SCALARS) for v in value):
                put(key, ",".join(str(v) for v in value) if value else None)
        elif key.endswith("_ns") and (value is None or isinstance(value, int)):  # unknown: ms too
            put(ms_key(kind, key), ms(value))
        elif key.startswith("url.") and isinstance(value, str):
            put(key, redact_url(value))
        else:
            put(key, value)
            if key == "server.address" and "server.port" not in data:
                client = data.get("tls.side") == "client"
                put("server.port", data.get("network.peer.port") if client else None)


def tls_fields(span: SpanLike, keys: Iterable[str] = CONTEXT_KEYS) -> dict[str, Any]:
    """The flat fields of ``span`` worth adding to other log events.

    ``span.id`` appears as ``<kind>.span_id`` (``tls.handshake.span_id``) so
    that it cannot be mistaken for the id of the event it is added to.

    Args:
        span: a handshake span (or a request span, whose handshake is nested).
        keys: which flat keys to keep.

    Returns:
        The selected keys that have a value.
    """
    fields = flatten(span)
    fields[f"{span.kind}.span_id"] = fields.pop("span.id", span.span_id)
    return {k: fields[k] for k in keys if k in fields}


def redact(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a span dict with URL userinfo, queries and fragments removed, nested spans too.

    ``to_dict()`` already leaves them out; this is the sinks' second line of defence.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SKIPPED and key.startswith("url."):
            continue
        if key.startswith("url.") and isinstance(value, str):
            out[key] = redact_url(value)
        elif isinstance(value, Mapping) and "tlstiming.kind" in value:
            out[key] = redact(value)
        else:
            out[key] = value
    return out
