"""The protocols and aliases you implement or annotate with, in one place.

Like ``structlog.typing``: what a sink, a verifier or a URL must offer, and
the names of the values spans carry. Each name stays importable where it
lived before (``tlstiming.Sink``, ``tlstiming.Verifier``,
``tlstiming.sinks.SpanLike``, ``tlstiming.spans.request.URLLike``...).

Protocols you implement:

- :class:`Sink`: a callable taking a span. ``Sink`` takes every kind (a
  global sink); ``Sink[HandshakeSpan]`` is what a context's ``add_sink``
  takes, ``Sink[RequestSpan]`` what a transport's ``sinks=`` takes.
- :class:`Verifier`: a callable ``(PeerInfo) -> Verdict | None`` run after
  each handshake (``TimedSSLContext.add_verifier``).
- :class:`SpanLike`: what the log sinks read of a span, for kinds of your own.
- :class:`URLLike`: what a request span reads of a URL (``httpx.URL`` has it).

Aliases: :data:`Span`, :data:`Outcome`, :data:`VerificationOutcome`,
:data:`Detail`, :data:`OnError`, :data:`Direction`, :data:`Side`.
"""

from __future__ import annotations

from tlstiming._analysis.timeline import Side
from tlstiming._recording.verify import OnError, Verifier
from tlstiming.spans.handshake import Direction, Outcome
from tlstiming.spans.protocols import Sink, Span, SpanLike
from tlstiming.spans.request import URLLike
from tlstiming.spans.verification import Detail
from tlstiming.spans.verification import Outcome as VerificationOutcome

__all__ = [
    "Detail",
    "Direction",
    "OnError",
    "Outcome",
    "Side",
    "Sink",
    "Span",
    "SpanLike",
    "URLLike",
    "VerificationOutcome",
    "Verifier",
]
