"""Everything pure over wire data is linear in its input (issue #10, item 10).

A peer controls how many messages, alerts, records, certificates and
extensions a handshake holds. Each case times a function on a crafted input of
size ``n`` and ``8 n`` and bounds the ratio, never a duration: a linear function
takes about 8 times as long, a quadratic one 64 times.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from tlstiming._analysis.timeline import RawEvent, Side, tile
from tlstiming._wire.names import ENTER, EXIT, VERIFY_END, VERIFY_START
from tlstiming.spans.build import build_span

GROWTH = 8
BOUND = GROWTH * 3
_SH13 = b"\x02\x00\x00\x30\x03\x03" + bytes(32) + b"\x00\x2b\x00\x02\x03\x04"
_FINISHED = b"\x14\x00\x00\x04" + bytes(4)
_CERTIFICATE = b"\x0b\x00\x00\x04" + bytes(4)


def _best(run: Callable[[], object], repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs, in seconds (collector off: it is not ours to time)."""
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()
    return best


def assert_linear(make: Callable[[int], Callable[[], object]], n: int) -> None:
    """``make(size)`` returns a run over an input of that size; 8x the input, < 24x the time."""
    small, large = make(n), make(GROWTH * n)
    small()  # warm caches and imports
    ratio = _best(large) / _best(small)
    assert ratio < BOUND, f"{GROWTH}x the input took {ratio:.1f}x the time"


def _events(middle: list[RawEvent]) -> list[RawEvent]:
    """Number ``middle`` in time and CPU between an ENTER and an EXIT marker."""
    rows = [("", ENTER, 0, b""), *[(d, c, k, data) for _, _, d, c, k, data in middle]]
    rows.append(("", EXIT, 0, b""))
    return [(10 * i, 10 * i, d, c, k, data) for i, (d, c, k, data) in enumerate(rows)]


def _hs(direction: str, kind: int, data: bytes) -> RawEvent:
    return (0, 0, direction, 22, kind, data)


# -- crafted handshakes, as the events the recording hands over ---------------------------


def many_server_finished(n: int) -> list[RawEvent]:
    """A TLS 1.3 client that reads ``n`` Finished messages, then sends a certificate."""
    return _events(
        [
            _hs("write", 1, b"\x01\x00\x00\x00"),
            _hs("read", 2, _SH13),
            *[_hs("read", 20, _FINISHED)] * n,
            _hs("write", 11, _CERTIFICATE),
            _hs("write", 20, _FINISHED),
        ]
    )


def many_client_finished(n: int) -> list[RawEvent]:
    """A server that writes ``n`` Finished messages before the client's."""
    return _events(
        [
            _hs("read", 1, b"\x01\x00\x00\x00"),
            _hs("write", 2, _SH13),
            *[_hs("write", 20, _FINISHED)] * n,
            _hs("read", 20, _FINISHED),
        ]
    )


def many_alerts(n: int) -> list[RawEvent]:
    alerts = [(0, 0, "read", 21, 0, bytes([1, i % 256])) for i in range(n)]
    return _events([_hs("write", 1, b"\x01\x00\x00\x00"), *alerts])


def many_records(n: int) -> list[RawEvent]:
    """``n`` TLS 1.3 records: an application_data header, then its inner content type."""
    header: RawEvent = (0, -1, "read", 256, 23, b"\x17\x03\x03\x00\x20")
    inner: RawEvent = (0, -1, "read", 257, 22, b"")
    return _events([_hs("write", 1, b"\x01\x00\x00\x00"), *[header, inner] * n])


def many_verifiers(n: int) -> list[RawEvent]:
    markers = [
        (0, 0, "", VERIFY_START if i % 2 == 0 else VERIFY_END, 0, f"v{i // 2}".encode())
        for i in range(2 * n)
    ]
    return _events([_hs("write", 1, b"\x01\x00\x00\x00"), _hs("read", 2, _SH13), *markers])


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


def many_certificates(n: int) -> list[RawEvent]:
    """A server Certificate message (TLS 1.3 layout) holding ``n`` copies of one small DER."""
    der = b"\x30\x03\x02\x01\x00"
    body = b"\x00" + _u24((_u24(der) + b"\x00\x00") * n)
    return _events([_hs("write", 1, b"\x01\x00\x00\x00"), _hs("read", 11, b"\x0b" + _u24(body))])


def many_extensions(n: int) -> list[RawEvent]:
    """A ClientHello with ``n`` distinct empty extensions."""
    extensions = b"".join((1000 + i).to_bytes(2, "big") + b"\x00\x00" for i in range(n))
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += len(extensions).to_bytes(2, "big") + extensions
    return _events([_hs("write", 1, b"\x01" + _u24(body))])


# -- the defects: tiling many Finished messages --------------------------------------------


@pytest.mark.parametrize(
    ("side", "events"),
    [("client", many_server_finished), ("server", many_client_finished)],
)
def test_tile_is_linear_in_finished_messages(
    side: Side, events: Callable[[int], list[RawEvent]]
) -> None:
    def make(n: int) -> Callable[[], object]:
        rows = events(n)
        return lambda: tile(rows, side, rows[0][0], rows[-1][0])

    assert_linear(make, 500)


# -- the whole span, from events to to_dict() ----------------------------------------------


@pytest.mark.parametrize(
    ("side", "events", "n"),
    [
        ("client", many_server_finished, 300),
        ("server", many_client_finished, 300),
        ("client", many_alerts, 300),
        ("client", many_records, 300),
        ("client", many_verifiers, 300),
        ("client", many_certificates, 200),
        ("client", many_extensions, 1000),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_a_failed_span_and_its_export_are_linear(
    side: Side, events: Callable[[int], list[RawEvent]], n: int
) -> None:
    """Building the span (an error tiles on the handshake path) and every view of it."""

    def make(size: int) -> Callable[[], object]:
        rows = events(size)

        def run() -> object:
            span = build_span(
                rows,
                server_side=side == "server",
                end_ns=rows[-1][0],
                server_hostname=None,
                peer=None,
                exc=ConnectionResetError("crafted"),
            )
            return span.to_dict(), span.facts.client_certificates

        return run

    assert_linear(make, n)
