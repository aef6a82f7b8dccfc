"""What a sink is and what it reads of a span: the protocols of the span layer.

Their public home is :mod:`tlstiming.typing`, with every other protocol and
alias a user implements or annotates with; they are defined here, below the
recording and the sinks that use them.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

from typing_extensions import TypeVar

from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.request import RequestSpan

__all__ = ["Sink", "Span", "SpanLike"]

Span: TypeAlias = HandshakeSpan | RequestSpan
"""Every span kind tlstiming delivers: ``tls.handshake`` and ``http.request`` spans."""

S_contra = TypeVar("S_contra", contravariant=True, default=Span)


class Sink(Protocol[S_contra]):
    """A callable that receives finished spans: one protocol for every span kind.

    ``Sink`` takes every kind: a global sink (``tlstiming.subscribe``) gets
    the handshake spans of every context and the request spans of
    ``tlstiming.httpx`` transports; tell them apart by ``span.kind``. Such a
    sink fits everywhere a sink is taken. ``Sink[HandshakeSpan]`` is what a
    context's ``add_sink`` takes (it delivers handshake spans only),
    ``Sink[RequestSpan]`` what a transport's ``sinks=`` takes.

    A sink runs on the thread that finished the span and must not block for
    long: wrap slow work in :class:`tlstiming.sinks.BackgroundSink`. An
    exception it raises is reported on the ``tlstiming`` logger, never raised
    into the connection.
    """

    def __call__(self, span: S_contra, /) -> None:
        """Take one span (spans are immutable; read what you need)."""


class SpanLike(Protocol):
    """What the sinks read from a span: a handshake span, a request span or any later kind."""

    @property
    def kind(self) -> str:
        """``"tls.handshake"``, ``"http.request"``..."""

    @property
    def span_id(self) -> str:
        """16 hex digits."""

    @property
    def outcome(self) -> str:
        """``"ok"`` or ``"error"``."""

    @property
    def duration_ns(self) -> int:
        """Total wall time."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of ``docs/schema.md``."""


for _protocol in (Sink, SpanLike):
    _protocol.__module__ = "tlstiming.typing"  # their public home
del _protocol
