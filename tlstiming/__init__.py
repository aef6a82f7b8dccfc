"""tlstiming: per-phase TLS handshake timings for Python.

Swap ``ssl.create_default_context()`` for :func:`tlstiming.create_default_context`
(or build a :class:`TimedSSLContext`), and every handshake made through that
context yields an immutable :class:`HandshakeSpan`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlstiming._certs import CertificateInfo
    from tlstiming._classes import TimedSSLObject, TimedSSLSocket
    from tlstiming._delivery import subscribe, unsubscribe
    from tlstiming._errors import HandshakeAbandoned, ParseError, TLSTimingError
    from tlstiming._facts import AlertFact, HandshakeFacts
    from tlstiming._lookup import span_of
    from tlstiming._request import ConnectAttempt, ConnectionInfo, RequestError, RequestSpan
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

# Names are imported on first use (PEP 562): ``import tlstiming`` stays cheap
# for processes that only load the pytest plugin or a submodule.
_WHERE: dict[str, str] = {
    "AlertFact": "tlstiming._facts",
    "CertificateInfo": "tlstiming._certs",
    "ConnectAttempt": "tlstiming._request",
    "ConnectionInfo": "tlstiming._request",
    "ContextStats": "tlstiming._trust",
    "HandshakeAbandoned": "tlstiming._errors",
    "HandshakeError": "tlstiming.spans",
    "HandshakeFacts": "tlstiming._facts",
    "HandshakeSpan": "tlstiming.spans",
    "Message": "tlstiming.spans",
    "ParseError": "tlstiming._errors",
    "PeerInfo": "tlstiming._verify",
    "Phase": "tlstiming.spans",
    "Record": "tlstiming.spans",
    "RequestError": "tlstiming._request",
    "RequestSpan": "tlstiming._request",
    "SCHEMA_VERSION": "tlstiming.spans",
    "Sink": "tlstiming.spans",
    "SpanRecorder": "tlstiming.recorder",
    "TLSTimingError": "tlstiming._errors",
    "TimedSSLContext": "tlstiming.context",
    "TimedSSLObject": "tlstiming._classes",
    "TimedSSLSocket": "tlstiming._classes",
    "Verdict": "tlstiming._verify",
    "Verification": "tlstiming._verify",
    "VerificationFailed": "tlstiming._verify",
    "Verifier": "tlstiming._verify",
    "VerifierRejected": "tlstiming._verify",
    "create_default_context": "tlstiming.context",
    "span_of": "tlstiming._lookup",
    "subscribe": "tlstiming._delivery",
    "unsubscribe": "tlstiming._delivery",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tlstiming' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "SCHEMA_VERSION",
    "AlertFact",
    "CertificateInfo",
    "ConnectAttempt",
    "ConnectionInfo",
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
    "RequestError",
    "RequestSpan",
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
