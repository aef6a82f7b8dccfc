"""Span values: what one TLS handshake (or one request) looked like, as immutable data.

The values and their one constructor (:mod:`~tlstiming.spans.build`), their
export (nested and flat) and their human rendering live in this package; it
imports nothing from the recording above it.
"""

from __future__ import annotations

from tlstiming.spans.handshake import (
    SCHEMA_VERSION,
    HandshakeError,
    HandshakeSpan,
    Message,
    Outcome,
    Phase,
    Record,
    Sink,
)

__all__ = [
    "SCHEMA_VERSION",
    "HandshakeError",
    "HandshakeSpan",
    "Message",
    "Outcome",
    "Phase",
    "Record",
    "Sink",
]

for _value in (HandshakeError, HandshakeSpan, Message, Phase, Record):
    _value.__module__ = __name__  # their public home
del _value
