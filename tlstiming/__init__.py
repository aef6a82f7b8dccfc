"""tlstiming: per-phase TLS handshake timings for Python.

Swap ``ssl.create_default_context()`` for :func:`tlstiming.create_default_context`
(or build a :class:`TimedSSLContext`), and every handshake made through that
context yields an immutable :class:`HandshakeSpan`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlstiming._analysis.certs import CertificateInfo
    from tlstiming._analysis.facts import AlertFact, ChainVerification, HandshakeFacts
    from tlstiming._recording.connections import TimedSSLObject, TimedSSLSocket
    from tlstiming._recording.delivery import subscribe, unsubscribe
    from tlstiming._recording.instrument import instrument, instrumented, uninstrument
    from tlstiming._recording.native import Implementation, implementation
    from tlstiming._recording.verify import (
        PeerInfo,
        Verdict,
        VerificationFailed,
        Verifier,
        VerifierRejected,
    )
    from tlstiming._trace.lookup import span_of
    from tlstiming.context import TimedSSLContext, create_default_context
    from tlstiming.diagnosis import Finding, diagnose
    from tlstiming.errors import HandshakeAbandoned, ParseError, TLSTimingError
    from tlstiming.recorder import SpanRecorder
    from tlstiming.spans.context_stats import ContextStats
    from tlstiming.spans.handshake import (
        SCHEMA_VERSION,
        HandshakeError,
        HandshakeSpan,
        Message,
        Phase,
        Record,
    )
    from tlstiming.spans.protocols import Sink
    from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestError, RequestSpan
    from tlstiming.spans.verification import Verification

# Names are imported on first use (PEP 562): ``import tlstiming`` stays cheap
# for processes that only load the pytest plugin or a submodule.
_WHERE: dict[str, str] = {
    "AlertFact": "tlstiming._analysis.facts",
    "ChainVerification": "tlstiming._analysis.facts",
    "CertificateInfo": "tlstiming._analysis.certs",
    "ConnectAttempt": "tlstiming.spans.request",
    "ConnectionInfo": "tlstiming.spans.request",
    "Finding": "tlstiming.diagnosis",
    "ContextStats": "tlstiming.spans.context_stats",
    "HandshakeAbandoned": "tlstiming.errors",
    "HandshakeError": "tlstiming.spans",
    "HandshakeFacts": "tlstiming._analysis.facts",
    "HandshakeSpan": "tlstiming.spans",
    "Implementation": "tlstiming._recording.native",
    "Message": "tlstiming.spans",
    "ParseError": "tlstiming.errors",
    "PeerInfo": "tlstiming._recording.verify",
    "Phase": "tlstiming.spans",
    "Record": "tlstiming.spans",
    "RequestError": "tlstiming.spans.request",
    "RequestSpan": "tlstiming.spans.request",
    "SCHEMA_VERSION": "tlstiming.spans",
    "Sink": "tlstiming.spans.protocols",
    "SpanRecorder": "tlstiming.recorder",
    "TLSTimingError": "tlstiming.errors",
    "TimedSSLContext": "tlstiming.context",
    "TimedSSLObject": "tlstiming._recording.connections",
    "TimedSSLSocket": "tlstiming._recording.connections",
    "Verdict": "tlstiming._recording.verify",
    "Verification": "tlstiming.spans.verification",
    "VerificationFailed": "tlstiming._recording.verify",
    "Verifier": "tlstiming._recording.verify",
    "VerifierRejected": "tlstiming._recording.verify",
    "create_default_context": "tlstiming.context",
    "diagnose": "tlstiming.diagnosis",
    "implementation": "tlstiming._recording.native",
    "instrument": "tlstiming._recording.instrument",
    "instrumented": "tlstiming._recording.instrument",
    "span_of": "tlstiming._trace.lookup",
    "subscribe": "tlstiming._recording.delivery",
    "uninstrument": "tlstiming._recording.instrument",
    "unsubscribe": "tlstiming._recording.delivery",
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
    "ChainVerification",
    "ConnectAttempt",
    "ConnectionInfo",
    "ContextStats",
    "Finding",
    "HandshakeAbandoned",
    "HandshakeError",
    "HandshakeFacts",
    "HandshakeSpan",
    "Implementation",
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
    "diagnose",
    "implementation",
    "instrument",
    "instrumented",
    "span_of",
    "subscribe",
    "uninstrument",
    "unsubscribe",
]

__version__ = "0.1.0.dev0"
