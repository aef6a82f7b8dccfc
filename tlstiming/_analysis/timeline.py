"""Turn the raw event list of one handshake into phases.

Pure: no sockets, no ``ssl`` objects, no clock. Every timestamp is an
argument, so every duration is exactly testable with made-up numbers.

A raw event is the tuple the message callback records::

    (t_ns, cpu_ns, direction, content_type, msg_type, data)

``direction`` is ``"read"`` or ``"write"`` (OpenSSL's view from the end that
recorded it), ``cpu_ns`` is the recording thread's CPU clock or ``-1`` when it
was not read (record headers). Besides OpenSSL's content types the adapter
adds markers with negative content types (``tlstiming._wire.names``): a call
into ``do_handshake`` starts (``ENTER``) or returns (``EXIT``), the server's
SNI callback starts (``SNI_START``) or returns (``SNI_END``), a verifier
starts (``VERIFY_START``) or returns (``VERIFY_END``), and (native hooks only)
OpenSSL's chain verification starts (``CHAIN_START``) or returns
(``CHAIN_END``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final, Literal

from tlstiming._wire.messages import sniff_server_hello
from tlstiming._wire.names import (
    ALERT,
    CHAIN_END,
    CHAIN_START,
    CLOSE_NOTIFY,
    ENTER,
    EXIT,
    FATAL,
    HANDSHAKE,
    SNI_END,
    SNI_START,
    VERIFY_START,
    HandshakeType,
)

__all__ = [
    "PHASE_NAMES",
    "VERIFY_PREFIX",
    "RawEvent",
    "Side",
    "Tiling",
    "failure_alert",
    "fatal_alert",
    "in_call_cpu",
    "is_fatal_alert",
    "tile",
]

RawEvent = tuple[int, int, str, int, int, bytes]
Side = Literal["client", "server"]

PHASE_NAMES: Final = (
    "client_hello",
    "server_hello",
    "hello_retry",
    "server_flight",
    "certificate",
    "certificate_status",
    "certificate_verify",
    "server_key_exchange",
    "client_key_exchange",
    "second_round_trip",
    "client_certificate",
    "client_certificate_verify",
    "sni_callback",
    "chain_verification",
    "client_finished",
    "finished",
)
"""Every phase name :func:`tile` can produce (documented in docs/concepts.md),
besides ``verify:<name>`` for each verifier that ran."""

VERIFY_PREFIX: Final = "verify:"
_FATAL: Final = bytes([FATAL])  # an alert's first byte: its level
_CLEAN: Final = bytes([CLOSE_NOTIFY])  # its second: its description

# (direction, handshake type) -> the phase that starts when that message is
# seen, for messages whose meaning does not depend on what came before.
# (Keys are plain ints: a lookup by an int then never compares with an enum.)
_CLIENT_TABLE: Final[dict[tuple[str, int], str]] = {
    ("read", int(HandshakeType.CERTIFICATE)): "certificate",
    ("read", int(HandshakeType.CERTIFICATE_STATUS)): "certificate_status",
    ("read", int(HandshakeType.CERTIFICATE_VERIFY)): "certificate_verify",
    ("read", int(HandshakeType.SERVER_KEY_EXCHANGE)): "server_key_exchange",
    ("read", int(HandshakeType.SERVER_HELLO_DONE)): "client_key_exchange",
}
_SERVER_TABLE: Final[dict[tuple[str, int], str]] = {
    ("write", int(HandshakeType.SERVER_HELLO_DONE)): "client_key_exchange",
    ("read", int(HandshakeType.CERTIFICATE)): "client_certificate",
    ("read", int(HandshakeType.CERTIFICATE_VERIFY)): "client_certificate_verify",
    ("read", int(HandshakeType.FINISHED)): "finished",
}


class Tiling:
    """Phases that tile one handshake from its first call to its end.

    Attributes:
        names: phase names, in order.
        bounds: ``len(names) + 1`` monotonic timestamps (ns); phase ``i``
            runs from ``bounds[i]`` to ``bounds[i + 1]``.
        cpu: per phase, the thread CPU time (ns) spent inside calls into
            the handshake, or ``None`` where the CPU clock was not read.
        round_trips: network round trips the handshake waited on.
        cpu_at: :func:`in_call_cpu` of the events, which the phases' CPU
            times come from (a span's messages read it too).
    """

    __slots__ = ("bounds", "cpu", "cpu_at", "names", "round_trips")

    def __init__(
        self,
        names: tuple[str, ...],
        bounds: tuple[int, ...],
        cpu: tuple[int | None, ...],
        round_trips: int,
        cpu_at: dict[int, int | None],
    ) -> None:
        self.names = names
        self.bounds = bounds
        self.cpu = cpu
        self.round_trips = round_trips
        self.cpu_at = cpu_at


def tile(events: Sequence[RawEvent], side: Side, start_ns: int, end_ns: int) -> Tiling:
    """Cut ``[start_ns, end_ns]`` into named phases at handshake-message boundaries.

    Args:
        events: the raw events of one connection, in the order recorded.
        side: which end recorded them.
        start_ns: when the handshake started (the first call).
        end_ns: when it completed or failed.

    Returns:
        A :class:`Tiling` whose phases are contiguous and sum to
        ``end_ns - start_ns``.
    """
    boundaries = _client_boundaries(events) if side == "client" else _server_boundaries(events)
    boundaries = sorted(boundaries + _verifier_boundaries(events) + _chain_boundaries(events))
    names = ["client_hello"]
    index: list[int | None] = [None]
    times = [start_ns]
    chain_end: int | None = None  # a CHAIN_END the next phase starts at
    for i, name in boundaries:
        if name == _CHAIN_DONE:
            chain_end = i if names[-1] == "chain_verification" else None
            continue
        at, chain_end = (i if chain_end is None else chain_end), None
        t = min(max(events[at][0], times[-1]), end_ns)
        if name == names[-1]:
            continue
        names.append(name)
        index.append(at)
        times.append(t)
    times.append(end_ns)
    cumulative = in_call_cpu(events)
    cpu_at = [cumulative.get(i) if i is not None else 0 for i in index]
    cpu_at.append(cumulative.get(-1))
    cpu = tuple(
        b - a if a is not None and b is not None else None for a, b in itertools.pairwise(cpu_at)
    )
    return Tiling(tuple(names), tuple(times), cpu, _round_trips(events), cumulative)


def _verifier_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    return [
        (i, VERIFY_PREFIX + e[5].decode("utf-8", "replace"))
        for i, e in enumerate(events)
        if e[3] == VERIFY_START
    ]


_CHAIN_DONE: Final = "\x00chain_done"  # not a phase: the next phase starts at this event


def _chain_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    """OpenSSL's chain verification: a phase of its own, from start to end exactly.

    The phase after it (the next message's) starts where it ended, so that
    the verification is exactly its own time (when nothing follows, as when
    it failed, it runs to the end); only the first one counts.
    """
    start = next((i for i, e in enumerate(events) if e[3] == CHAIN_START), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(events)) if events[i][3] == CHAIN_END), None)
    out = [(start, "chain_verification")]
    if end is not None:
        out.append((end, _CHAIN_DONE))
    return out


def _handshake_messages(events: Sequence[RawEvent]) -> list[tuple[int, str, int, bytes]]:
    return [(i, e[2], e[4], e[5]) for i, e in enumerate(events) if e[3] == HANDSHAKE]


def _client_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    messages = _handshake_messages(events)
    finished = HandshakeType.FINISHED
    # The client's last message other than Finished: after the server's
    # Finished, in TLS 1.3, it ends the client's certificate flight.
    last_sent = max((m[0] for m in messages if m[1] == "write" and m[2] != finished), default=-1)
    out: list[tuple[int, str]] = []
    server_finished = False
    tls13 = False
    for i, direction, kind, data in messages:
        if direction == "write" and kind == HandshakeType.CLIENT_HELLO:
            if not out:
                out.append((i, "server_hello"))
        elif direction == "read" and kind == HandshakeType.SERVER_HELLO:
            hrr, hello_tls13 = sniff_server_hello(data)
            tls13 = tls13 or hello_tls13
            out.append((i, "hello_retry" if hrr else "server_flight"))
        elif direction == "read" and kind == finished:
            server_finished = True
            flight = tls13 and last_sent > i
            out.append((i, "client_certificate" if flight else "finished"))
            if flight:
                out.append((last_sent, "finished"))
        elif direction == "write" and kind == finished and not server_finished:
            out.append((i, "second_round_trip"))
        elif (direction, kind) in _CLIENT_TABLE:
            out.append((i, _CLIENT_TABLE[direction, kind]))
    return sorted(out)


def _server_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    finished = HandshakeType.FINISHED
    seen_hello = False
    hrr_sent = False
    read_finished = False  # the client's Finished came before this event
    for i, event in enumerate(events):
        content_type, direction, kind = event[3], event[2], event[4]
        if content_type == SNI_START:
            out.append((i, "sni_callback"))
        elif content_type == SNI_END:
            out.append((i, "hello_retry" if hrr_sent else "server_hello"))
        elif content_type != HANDSHAKE:
            continue
        elif direction == "read" and kind == HandshakeType.CLIENT_HELLO and not seen_hello:
            seen_hello = True
            if not _sni_follows(events, i):
                out.append((i, "server_hello"))
        elif direction == "write" and kind == HandshakeType.SERVER_HELLO:
            hrr = sniff_server_hello(event[5])[0]
            hrr_sent = hrr_sent or hrr
            out.append((i, "hello_retry" if hrr else "server_flight"))
        elif direction == "write" and kind == finished and not read_finished:
            out.append((i, "client_finished"))
        elif (direction, kind) in _SERVER_TABLE:
            out.append((i, _SERVER_TABLE[direction, kind]))
        read_finished = read_finished or (
            content_type == HANDSHAKE and direction == "read" and kind == finished
        )
    return out


def _sni_follows(events: Sequence[RawEvent], i: int) -> bool:
    for event in events[i + 1 :]:
        if event[3] == SNI_START:
            return True
        if event[3] == HANDSHAKE:
            return False
    return False


def in_call_cpu(events: Sequence[RawEvent]) -> dict[int, int | None]:
    """Map event index -> CPU spent inside handshake calls up to that event.

    The key ``-1`` holds the total up to the last reading. CPU spent between
    calls (an event loop running other tasks) is left out.
    """
    out: dict[int, int | None] = {}
    total = 0
    base: int | None = None
    for i, event in enumerate(events):
        cpu = event[1]
        if cpu < 0:
            continue
        if base is None:
            base = cpu
        out[i] = total + cpu - base
        if event[3] == EXIT:
            total += cpu - base
            base = None
        elif event[3] == ENTER:
            out[i] = total
    out[-1] = max((v for v in out.values() if v is not None), default=0)
    return out


def is_fatal_alert(event: RawEvent) -> bool:
    """Tell whether ``event`` is an alert of level fatal."""
    return event[3] == ALERT and event[5][:1] == _FATAL


def fatal_alert(events: Sequence[RawEvent]) -> RawEvent | None:
    """The first fatal alert sent or received, or ``None``."""
    return next(filter(is_fatal_alert, events), None)


def failure_alert(events: Sequence[RawEvent]) -> RawEvent | None:
    """The alert that went with a failure: the first fatal one, else the first but close_notify."""
    alert = fatal_alert(events)
    if alert is None:
        alert = next((e for e in events if e[3] == ALERT and e[5][1:2] != _CLEAN), None)
    return alert


def _round_trips(events: Sequence[RawEvent]) -> int:
    """Count the flights this end waited on after sending one of its own."""
    trips = 0
    waiting = False
    for event in events:
        if event[3] != HANDSHAKE and event[3] != ALERT:
            continue
        if event[2] == "write":
            waiting = True
        elif waiting:
            trips += 1
            waiting = False
    return trips
