"""Turn the raw event list of one handshake into phases.

Pure: no sockets, no ``ssl`` objects, no clock. Every timestamp is an
argument, so every duration is exactly testable with made-up numbers.

A raw event is the tuple the message callback records::

    (t_ns, cpu_ns, direction, content_type, msg_type, data)

``direction`` is ``"read"`` or ``"write"`` (OpenSSL's view from the end that
recorded it), ``cpu_ns`` is the recording thread's CPU clock or ``-1`` when it
was not read (record headers). Besides OpenSSL's content types the adapter
adds markers with negative content types: a call into ``do_handshake`` starts
(:data:`ENTER`) or returns (:data:`EXIT`), and the server's SNI callback
starts (:data:`SNI_START`) or returns (:data:`SNI_END`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final, Literal

__all__ = [
    "ENTER",
    "EXIT",
    "PHASE_NAMES",
    "SNI_END",
    "SNI_START",
    "VERIFY_END",
    "VERIFY_PREFIX",
    "VERIFY_START",
    "RawEvent",
    "Side",
    "Tiling",
    "in_call_cpu",
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
    "client_finished",
    "finished",
)
"""Every phase name :func:`tile` can produce (documented in docs/concepts.md),
besides ``verify:<name>`` for each verifier that ran."""

ENTER: Final = -1
EXIT: Final = -2
SNI_START: Final = -3
SNI_END: Final = -4
VERIFY_START: Final = -5  # data: the verifier's name, UTF-8
VERIFY_END: Final = -6
VERIFY_PREFIX: Final = "verify:"

HANDSHAKE: Final = 22
ALERT: Final = 21

_CLIENT_HELLO: Final = 1
_SERVER_HELLO: Final = 2
_CERTIFICATE: Final = 11
_SERVER_KEY_EXCHANGE: Final = 12
_SERVER_HELLO_DONE: Final = 14
_CERTIFICATE_VERIFY: Final = 15
_FINISHED: Final = 20
_CERTIFICATE_STATUS: Final = 22

# SHA-256("HelloRetryRequest"): the ServerHello.random of a HelloRetryRequest.
HRR_RANDOM: Final = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)

# (direction, handshake type) -> the phase that starts when that message is
# seen, for messages whose meaning does not depend on what came before.
_CLIENT_TABLE: Final[dict[tuple[str, int], str]] = {
    ("read", _CERTIFICATE): "certificate",
    ("read", _CERTIFICATE_STATUS): "certificate_status",
    ("read", _CERTIFICATE_VERIFY): "certificate_verify",
    ("read", _SERVER_KEY_EXCHANGE): "server_key_exchange",
    ("read", _SERVER_HELLO_DONE): "client_key_exchange",
}
_SERVER_TABLE: Final[dict[tuple[str, int], str]] = {
    ("write", _SERVER_HELLO_DONE): "client_key_exchange",
    ("read", _CERTIFICATE): "client_certificate",
    ("read", _CERTIFICATE_VERIFY): "client_certificate_verify",
    ("read", _FINISHED): "finished",
}


def is_hello_retry(data: bytes) -> bool:
    """Tell whether a ServerHello message (header included) is a HelloRetryRequest."""
    return data[6:38] == HRR_RANDOM


class Tiling:
    """Phases that tile one handshake from its first call to its end.

    Attributes:
        names: phase names, in order.
        bounds: ``len(names) + 1`` monotonic timestamps (ns); phase ``i``
            runs from ``bounds[i]`` to ``bounds[i + 1]``.
        cpu: per phase, the thread CPU time (ns) spent inside calls into
            the handshake, or ``None`` where the CPU clock was not read.
        round_trips: network round trips the handshake waited on.
    """

    __slots__ = ("bounds", "cpu", "names", "round_trips")

    def __init__(
        self,
        names: tuple[str, ...],
        bounds: tuple[int, ...],
        cpu: tuple[int | None, ...],
        round_trips: int,
    ) -> None:
        self.names = names
        self.bounds = bounds
        self.cpu = cpu
        self.round_trips = round_trips


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
    boundaries = sorted(boundaries + _verifier_boundaries(events))
    names = ["client_hello"]
    index: list[int | None] = [None]
    times = [start_ns]
    for i, name in boundaries:
        t = min(max(events[i][0], times[-1]), end_ns)
        if name == names[-1]:
            continue
        names.append(name)
        index.append(i)
        times.append(t)
    times.append(end_ns)
    cumulative = in_call_cpu(events)
    cpu_at = [cumulative.get(i) if i is not None else 0 for i in index]
    cpu_at.append(cumulative.get(-1))
    cpu = tuple(
        b - a if a is not None and b is not None else None for a, b in itertools.pairwise(cpu_at)
    )
    return Tiling(tuple(names), tuple(times), cpu, _round_trips(events))


def _verifier_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    return [
        (i, VERIFY_PREFIX + e[5].decode("utf-8", "replace"))
        for i, e in enumerate(events)
        if e[3] == VERIFY_START
    ]


def _handshake_messages(events: Sequence[RawEvent]) -> list[tuple[int, str, int, bytes]]:
    return [(i, e[2], e[4], e[5]) for i, e in enumerate(events) if e[3] == HANDSHAKE]


def _client_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    messages = _handshake_messages(events)
    # The client's last message other than Finished: after the server's
    # Finished, in TLS 1.3, it ends the client's certificate flight.
    last_sent = max((m[0] for m in messages if m[1] == "write" and m[2] != _FINISHED), default=-1)
    out: list[tuple[int, str]] = []
    server_finished = False
    tls13 = False
    for i, direction, kind, data in messages:
        if direction == "write" and kind == _CLIENT_HELLO:
            if not out:
                out.append((i, "server_hello"))
        elif direction == "read" and kind == _SERVER_HELLO:
            hrr = is_hello_retry(data)
            tls13 = tls13 or hrr or _negotiated_tls13(data)
            out.append((i, "hello_retry" if hrr else "server_flight"))
        elif direction == "read" and kind == _FINISHED:
            server_finished = True
            flight = tls13 and last_sent > i
            out.append((i, "client_certificate" if flight else "finished"))
            if flight:
                out.append((last_sent, "finished"))
        elif direction == "write" and kind == _FINISHED and not server_finished:
            out.append((i, "second_round_trip"))
        elif (direction, kind) in _CLIENT_TABLE:
            out.append((i, _CLIENT_TABLE[direction, kind]))
    return sorted(out)


def _server_boundaries(events: Sequence[RawEvent]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
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
        elif direction == "read" and kind == _CLIENT_HELLO and not seen_hello:
            seen_hello = True
            if not _sni_follows(events, i):
                out.append((i, "server_hello"))
        elif direction == "write" and kind == _SERVER_HELLO:
            hrr_sent = hrr_sent or is_hello_retry(event[5])
            out.append((i, "hello_retry" if is_hello_retry(event[5]) else "server_flight"))
        elif direction == "write" and kind == _FINISHED and not read_finished:
            out.append((i, "client_finished"))
        elif (direction, kind) in _SERVER_TABLE:
            out.append((i, _SERVER_TABLE[direction, kind]))
        read_finished = read_finished or (
            content_type == HANDSHAKE and direction == "read" and kind == _FINISHED
        )
    return out


def _sni_follows(events: Sequence[RawEvent], i: int) -> bool:
    for event in events[i + 1 :]:
        if event[3] == SNI_START:
            return True
        if event[3] == HANDSHAKE:
            return False
    return False


def _negotiated_tls13(server_hello: bytes) -> bool:
    """Find supported_versions = 0x0304 in a ServerHello without a full parse."""
    return b"\x00\x2b\x00\x02\x03\x04" in server_hello[38:]


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
