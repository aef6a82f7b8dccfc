"""Span values: what one TLS handshake looked like, as immutable data.

A :class:`HandshakeSpan` is built at the end of every handshake made through
a :class:`~tlstiming.TimedSSLContext`. Building it is cheap: the phases, the
message timeline and the parsed facts are computed the first time anybody
reads them, so a span that no sink reads costs almost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from tlstiming._analysis import timeline as _timeline
from tlstiming._wire.names import (
    ALERT,
    CHANGE_CIPHER_SPEC,
    CONTENT_TYPES,
    HANDSHAKE,
    INNER_CONTENT_TYPE,
    RECORD_HEADER,
    alert_name,
    handshake_type_name,
)
from tlstiming.spans import context_stats as _trust
from tlstiming.spans.context_stats import ContextStats
from tlstiming.spans.escape import escape
from tlstiming.spans.verification import Verification

if TYPE_CHECKING:
    from tlstiming._analysis.facts import HandshakeFacts

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

SCHEMA_VERSION: Final = "1"

Outcome = Literal["ok", "error"]
Direction = Literal["sent", "received"]

_COMPUTE_LOCK: Final = threading.RLock()  # views may read other views
_T = TypeVar("_T")
_MESSAGE_TYPES: Final = {  # the content types whose messages the timeline lists
    t: CONTENT_TYPES[t] for t in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE)
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One contiguous stretch of a handshake.

    Attributes:
        name: what happens in it (see ``docs/concepts.md``).
        start_ns: start, on the ``time.perf_counter_ns()`` clock.
        end_ns: end, on the same clock.
        cpu_ns: CPU time this thread spent in the handshake during the phase,
            or ``None`` when unknown. ``duration_ns - cpu_ns`` is waiting.
    """

    name: str
    start_ns: int
    end_ns: int
    cpu_ns: int | None

    @property
    def duration_ns(self) -> int:
        """Wall time of the phase in nanoseconds."""
        return self.end_ns - self.start_ns

    @property
    def wait_ns(self) -> int | None:
        """Wall time not spent on this thread's CPU (network, peer, scheduling)."""
        return None if self.cpu_ns is None else max(self.duration_ns - self.cpu_ns, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One TLS message (handshake message, alert, change_cipher_spec) on the timeline.

    Attributes:
        t_ns: when OpenSSL handed it over (read: whole message received;
            sent: written to the record layer), ``perf_counter_ns`` clock.
        direction: ``"sent"`` or ``"received"`` from the recording end.
        content_type: ``"handshake"``, ``"alert"`` or ``"change_cipher_spec"``.
        type: the handshake message type (``"server_hello"``), the alert
            description (``"bad_certificate"``), or ``"change_cipher_spec"``.
        size: bytes, handshake header included.
        cpu_ns: CPU time the handshake had used when the message was seen:
            the handshaking thread's CPU inside calls into the handshake
            since the first one. ``None`` for change_cipher_spec (the clock
            is read for handshake messages and alerts only).
    """

    t_ns: int
    direction: Direction
    content_type: str
    type: str
    size: int
    cpu_ns: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One TLS record on the timeline, as its header was read or written.

    Attributes:
        t_ns: when its header was read (so: when it arrived) or written.
        direction: ``"sent"`` or ``"received"``.
        content_type: what it carries: ``handshake``, ``alert``,
            ``change_cipher_spec``, ``application_data``. For a TLS 1.3
            encrypted record this is its inner (real) content type.
        encrypted: a TLS 1.3 record whose outer type hid the inner one.
        length: the record's payload length from its header, bytes.
    """

    t_ns: int
    direction: Direction
    content_type: str
    encrypted: bool
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeError:
    """Why a handshake failed.

    Attributes:
        type: the exception's qualified class name (``ssl.SSLCertVerificationError``).
        message: ``str()`` of the exception, exactly as the caller saw it.
        phase: the phase in progress when it failed.
        alert: the TLS alert description, if an alert was sent or received.
        alert_source: ``"local"`` if this end sent it, ``"peer"`` if received.
        reason: OpenSSL's reason code name (``exc.reason``) for ``ssl.SSLError``.
        verify_code: ``exc.verify_code`` for certificate verification errors.
    """

    type: str
    message: str
    phase: str | None
    alert: str | None = None
    alert_source: Literal["local", "peer"] | None = None
    reason: str | None = None
    verify_code: int | None = None


class HandshakeSpan:
    """The timing and facts of one TLS handshake. Immutable.

    Construct through :class:`~tlstiming.TimedSSLContext`; read with
    :func:`~tlstiming.span_of` or a sink. Every attribute is read-only.
    """

    __slots__ = (
        "_context",
        "_end",
        "_error",
        "_events",
        "_facts",
        "_hostname",
        "_id",
        "_messages",
        "_peer",
        "_phases",
        "_records",
        "_side",
        "_start",
        "_tiling",
        "_unix",
        "_verifications",
    )

    kind: Final = "tls.handshake"

    _events: Sequence[_timeline.RawEvent]
    _tiling: _timeline.Tiling | None
    _phases: tuple[Phase, ...] | None
    _messages: tuple[Message, ...] | None
    _records: tuple[Record, ...] | None
    _facts: HandshakeFacts | None

    def __init__(
        self,
        *,
        span_id: int,
        side: _timeline.Side,
        server_hostname: str | None,
        peer: tuple[str, int] | None,
        events: Sequence[_timeline.RawEvent],
        end_ns: int,
        end_unix_ns: int,
        error: HandshakeError | None = None,
        context: tuple[int, int, int, int, int, int] | None = None,
        verifications: tuple[Verification, ...] = (),
        tiling: _timeline.Tiling | None = None,
        facts: HandshakeFacts | None = None,
    ) -> None:
        """Store one handshake's values; every span is built by ``spans.build.build_span``.

        ``tiling`` and ``facts``, when given, are views already computed from
        these very events (to name a failure's phase, to run verifiers).
        """
        # Runs at the end of every handshake: plain slot stores, nothing else.
        self._id = span_id
        self._side = side
        self._hostname = server_hostname
        self._peer = peer
        self._start = events[0][0]
        self._end = end_ns
        self._unix = end_unix_ns
        self._error = error
        self._context = context
        self._verifications = verifications
        self._events = events
        self._tiling = tiling
        self._phases = None
        self._records = None
        self._messages = None
        self._facts = facts

    def __reduce__(self) -> str | tuple[Any, ...]:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self) -> str:
        host = escape(self._hostname or (self._peer[0] if self._peer else "?"))
        return (
            f"<HandshakeSpan {self._side} {host} {self.outcome} "
            f"{self.duration_ns / 1e6:.3f} ms id={self.span_id}>"
        )

    @property
    def span_id(self) -> str:
        """16 hex digits, unique per span (request spans link to it)."""
        return f"{self._id:016x}"

    @property
    def side(self) -> _timeline.Side:
        """``"client"`` or ``"server"``: the end that recorded the span."""
        return self._side

    @property
    def server_hostname(self) -> str | None:
        """The ``server_hostname`` the client asked for (``None`` on the server side)."""
        return self._hostname

    @property
    def peer(self) -> tuple[str, int] | None:
        """The peer's (address, port) for socket connections, else ``None``."""
        return self._peer

    @property
    def start_ns(self) -> int:
        """When the first ``do_handshake()`` call began (``time.perf_counter_ns()`` clock)."""
        return self._start

    @property
    def end_ns(self) -> int:
        """When the handshake completed or failed (same clock)."""
        return self._end

    @property
    def start_unix_ns(self) -> int:
        """The start on the wall clock (Unix epoch, ns), for exporters."""
        return self._unix - (self._end - self._start)

    @property
    def outcome(self) -> Outcome:
        """``"ok"`` or ``"error"``."""
        return "ok" if self._error is None else "error"

    @property
    def error(self) -> HandshakeError | None:
        """Why the handshake failed, or ``None``."""
        return self._error

    @property
    def context_stats(self) -> ContextStats | None:
        """The context's setup cost as this handshake saw it (trust-store loads…)."""
        snapshot = self._context
        return None if snapshot is None else _trust.stats(snapshot)

    @property
    def verifications(self) -> tuple[Verification, ...]:
        """The context's verifiers that ran after this handshake, in order."""
        return self._verifications

    # -- cheap, always available ------------------------------------------------

    @property
    def duration_ns(self) -> int:
        """Total wall time of the handshake, first call to completion or failure."""
        return self.end_ns - self.start_ns

    # -- computed on first read ------------------------------------------------

    @property
    def phases(self) -> tuple[Phase, ...]:
        """Contiguous phases from start to end; their durations sum to :attr:`duration_ns`."""
        return self._lazy("_phases", self._compute_phases)

    @property
    def cpu_ns(self) -> int | None:
        """CPU time this thread spent inside the handshake, if known."""
        cpu = self._tiling_().cpu
        return None if any(c is None for c in cpu) else sum(c for c in cpu if c is not None)

    @property
    def round_trips(self) -> int:
        """Network round trips the handshake waited on (1 for TLS 1.3, 2 for TLS 1.2 or HRR)."""
        return self._tiling_().round_trips

    @property
    def messages(self) -> tuple[Message, ...]:
        """Every handshake message, alert and change_cipher_spec, in order."""
        return self._lazy(
            "_messages", lambda: tuple(_messages(self._events, self._tiling_().cpu_at))
        )

    @property
    def records(self) -> tuple[Record, ...]:
        """Every TLS record of the handshake, in order, with its arrival or send time."""
        return self._lazy("_records", lambda: tuple(_records(self._events)))

    @property
    def facts(self) -> HandshakeFacts:
        """What the handshake negotiated, parsed from its messages."""
        return self._lazy("_facts", self._compute_facts)

    def phase(self, name: str) -> Phase | None:
        """Return the phase called ``name``, or ``None`` if the handshake had none."""
        return next((p for p in self.phases if p.name == name), None)

    def to_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        """Return a JSON-ready dict with the stable keys documented in ``docs/schema.md``.

        Args:
            timeline: ``False`` leaves the lists of certificates, messages and
                records out (``None``): what log events keep, at a third of
                the cost.
        """
        from tlstiming.spans.export import handshake_to_dict  # noqa: PLC0415

        return handshake_to_dict(self, timeline=timeline)

    def _tiling_(self) -> _timeline.Tiling:
        return self._lazy(
            "_tiling", lambda: _timeline.tile(self._events, self._side, self._start, self._end)
        )

    def _compute_phases(self) -> tuple[Phase, ...]:
        tiling = self._tiling_()
        bounds, cpu = tiling.bounds, tiling.cpu
        return tuple(
            Phase(name=name, start_ns=bounds[i], end_ns=bounds[i + 1], cpu_ns=cpu[i])
            for i, name in enumerate(tiling.names)
        )

    def _compute_facts(self) -> HandshakeFacts:
        from tlstiming._analysis.facts import facts_of  # noqa: PLC0415

        return facts_of(self._events, self._side)

    def _lazy(self, slot: str, compute: Callable[[], _T]) -> _T:
        """Compute a view of the raw events once, on first read (any thread)."""
        value: _T | None = getattr(self, slot)
        if value is None:
            with _COMPUTE_LOCK:
                value = getattr(self, slot)
                if value is None:
                    if type(self._events) is not tuple:  # packed by the C accelerator
                        self._events = tuple(self._events)
                    value = compute()
                    setattr(self, slot, value)
                    tiling = self._tiling
                    if tiling is not None and None not in (
                        self._messages,
                        self._records,
                        self._facts,
                    ):
                        # The raw bytes can hold session tickets (a resuming
                        # ClientHello): once every view exists, nothing needs
                        # them, nor the per-event CPU map messages were read with.
                        self._events = ()
                        tiling.cpu_at = {}
        return value


def _messages(events: Sequence[_timeline.RawEvent], used: dict[int, int | None]) -> list[Message]:
    """The messages of ``events``; ``used`` is their ``in_call_cpu`` (the tiling has it)."""
    out = []
    for i, (t_ns, _cpu, direction, content_type, msg_type, data) in enumerate(events):
        kind = _MESSAGE_TYPES.get(content_type)
        if kind is None:
            continue
        if content_type == HANDSHAKE:
            name = handshake_type_name(msg_type)
        elif content_type == ALERT:
            name = alert_name(data[1]) if len(data) > 1 else "unknown"
        else:
            name = kind
        out.append(
            Message(
                t_ns=t_ns,
                direction="sent" if direction == "write" else "received",
                content_type=kind,
                type=name,
                size=len(data),
                cpu_ns=used.get(i),
            )
        )
    return out


def _records(events: Sequence[_timeline.RawEvent]) -> list[Record]:
    out: list[Record] = []
    for t_ns, _cpu, direction, content_type, msg_type, data in events:
        if content_type == RECORD_HEADER and len(data) >= 5:
            out.append(
                Record(
                    t_ns=t_ns,
                    direction="sent" if direction == "write" else "received",
                    content_type=CONTENT_TYPES.get(msg_type, f"unknown({msg_type})"),
                    encrypted=False,
                    length=int.from_bytes(data[3:5], "big"),
                )
            )
        elif (
            content_type == INNER_CONTENT_TYPE
            and out
            and out[-1].content_type == "application_data"
        ):
            last = out[-1]
            inner = CONTENT_TYPES.get(msg_type, f"unknown({msg_type})")
            out[-1] = Record(
                t_ns=last.t_ns,
                direction=last.direction,
                content_type=inner,
                encrypted=True,
                length=last.length,
            )
    return out


Sink = Callable[[HandshakeSpan], None]
"""A sink receives every span as it completes. It must not block for long.

Context sinks receive handshake spans only. Global sinks (``tlstiming.subscribe``)
also receive the request spans of ``tlstiming.httpx`` transports
(``tlstiming.httpx.RequestSink``); tell them apart by ``span.kind``.
"""
