"""tlstiming: per-phase TLS handshake timings for Python.

Swap ``ssl.create_default_context()`` for :func:`tlstiming.create_default_context`
(or build a :class:`TimedSSLContext`), and every handshake made through that
context yields an immutable :class:`HandshakeSpan`.
"""

from __future__ import annotations

from typing import Any

from tlstiming._certs import CertificateInfo
from tlstiming._classes import TimedSSLObject, TimedSSLSocket
from tlstiming._conn import span_of as _span_of
from tlstiming._delivery import subscribe, unsubscribe
from tlstiming._errors import HandshakeAbandoned, ParseError, TLSTimingError
from tlstiming._facts import AlertFact, HandshakeFacts
from tlstiming._trust import ContextStats
from tlstiming._verify import (
    PeerInfo,
    Verdict,
    Verification,
    VerificationFailed,
    Verifier,
    VerifierRejected,
)
from tlstiming.context import TimedSSLContext, create_default_context
from tlstiming.recorder import SpanRecorder
from tlstiming.spans import (
    SCHEMA_VERSION,
    HandshakeError,
    HandshakeSpan,
    Message,
    Phase,
    Record,
    Sink,
)

__all__ = [
    "SCHEMA_VERSION",
    "AlertFact",
    "CertificateInfo",
    "ContextStats",
    "HandshakeAbandoned",
    "HandshakeError",
    "HandshakeFacts",
    "HandshakeSpan",
    "Message",
    "ParseError",
    "PeerInfo",
    "Phase",
    "Record",
    "Sink",
    "SpanRecorder",
    "TLSTimingError",
    "TimedSSLContext",
    "TimedSSLObject",
    "TimedSSLSocket",
    "Verdict",
    "Verification",
    "VerificationFailed",
    "Verifier",
    "VerifierRejected",
    "__version__",
    "create_default_context",
    "span_of",
    "subscribe",
    "unsubscribe",
]

__version__ = "0.1.0.dev0"


def span_of(obj: Any) -> HandshakeSpan | None:
    """Return the span recorded for ``obj``.

    Args:
        obj: an ``ssl.SSLSocket`` or ``ssl.SSLObject`` made by a
            :class:`TimedSSLContext`.

    Returns:
        Its :class:`HandshakeSpan`, or ``None`` before its handshake ended
        or for a connection no TimedSSLContext made.
    """
    span = _span_of(obj)
    return span if isinstance(span, HandshakeSpan) else None
