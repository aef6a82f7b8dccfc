"""The pure tiling of raw events into phases, with made-up timestamps."""

from __future__ import annotations

import pytest

from tlstiming._analysis.timeline import RawEvent, tile
from tlstiming._wire.names import ENTER, EXIT, HELLO_RETRY_RANDOM, SNI_END, SNI_START

_SH13 = b"\x02\x00\x00\x30\x03\x03" + bytes(32) + b"\x00\x2b\x00\x02\x03\x04"
_HRR = b"\x02\x00\x00\x30\x03\x03" + HELLO_RETRY_RANDOM + b"\x00\x2b\x00\x02\x03\x04"
_SH12 = b"\x02\x00\x00\x30\x03\x03" + bytes(32) + b"\x00"


def hs(t: int, cpu: int, direction: str, msg_type: int, data: bytes = b"") -> RawEvent:
    return (t, cpu, direction, 22, msg_type, data or bytes([msg_type, 0, 0, 0]))


def marker(t: int, cpu: int, kind: int) -> RawEvent:
    return (t, cpu, "", kind, 0, b"")


def record(t: int, direction: str) -> RawEvent:
    return (t, -1, direction, 256, 22, b"\x16\x03\x03\x00\x10")


TLS13_CLIENT = [
    marker(100, 1000, ENTER),
    record(110, "write"),
    hs(120, 1015, "write", 1),
    record(400, "read"),
    hs(410, 1030, "read", 2, _SH13),
    hs(450, 1070, "read", 8),
    hs(460, 1080, "read", 11),
    hs(700, 1320, "read", 15),
    hs(760, 1380, "read", 20),
    hs(800, 1420, "write", 20),
    marker(810, 1430, EXIT),
]


def names(events: list[RawEvent], side: str = "client") -> tuple[str, ...]:
    return tile(events, side, events[0][0], events[-1][0]).names  # type: ignore[arg-type]


def test_tls13_client_phases_bounds_and_cpu() -> None:
    tiling = tile(TLS13_CLIENT, "client", 100, 810)
    assert tiling.names == (
        "client_hello",
        "server_hello",
        "server_flight",
        "certificate",
        "certificate_verify",
        "finished",
    )
    assert tiling.bounds == (100, 120, 410, 460, 700, 760, 810)
    assert tiling.cpu == (15, 15, 50, 240, 60, 50)
    assert tiling.round_trips == 1


def test_phases_tile_exactly() -> None:
    tiling = tile(TLS13_CLIENT, "client", 100, 810)
    durations = [b - a for a, b in zip(tiling.bounds, tiling.bounds[1:], strict=False)]
    assert sum(durations) == 810 - 100
    assert all(d >= 0 for d in durations)


def test_hello_retry_is_its_own_phase_and_round_trip() -> None:
    events = [
        marker(0, 0, ENTER),
        hs(10, 10, "write", 1),
        hs(100, 20, "read", 2, _HRR),
        hs(150, 70, "write", 1),
        hs(300, 80, "read", 2, _SH13),
        hs(320, 100, "read", 8),
        hs(330, 110, "read", 11),
        hs(400, 180, "read", 15),
        hs(420, 200, "read", 20),
        hs(440, 220, "write", 20),
        marker(450, 230, EXIT),
    ]
    tiling = tile(events, "client", 0, 450)
    assert tiling.names[:4] == ("client_hello", "server_hello", "hello_retry", "server_flight")
    assert tiling.bounds[2:4] == (100, 300)
    assert tiling.round_trips == 2


def test_tls12_full_handshake_has_a_second_round_trip() -> None:
    events = [
        marker(0, 0, ENTER),
        hs(10, 10, "write", 1),
        hs(100, 20, "read", 2, _SH12),
        hs(110, 30, "read", 11),
        hs(200, 120, "read", 12),
        hs(260, 180, "read", 14),
        hs(280, 200, "write", 16),
        hs(290, 210, "write", 20),
        hs(400, 220, "read", 4),
        hs(410, 230, "read", 20),
        marker(420, 240, EXIT),
    ]
    tiling = tile(events, "client", 0, 420)
    assert tiling.names == (
        "client_hello",
        "server_hello",
        "server_flight",
        "certificate",
        "server_key_exchange",
        "client_key_exchange",
        "second_round_trip",
        "finished",
    )
    assert tiling.bounds[6:8] == (290, 410)
    assert tiling.round_trips == 2


def test_tls12_resumption_has_one_round_trip() -> None:
    events = [
        marker(0, 0, ENTER),
        hs(10, 10, "write", 1),
        hs(100, 20, "read", 2, _SH12),
        hs(110, 30, "read", 20),
        hs(120, 40, "write", 20),
        marker(130, 50, EXIT),
    ]
    tiling = tile(events, "client", 0, 130)
    assert tiling.names == ("client_hello", "server_hello", "server_flight", "finished")
    assert tiling.round_trips == 1


def test_tls13_client_certificate_is_split_from_finished() -> None:
    events = [
        *TLS13_CLIENT[:9],
        hs(770, 1390, "write", 11),
        hs(790, 1410, "write", 15),
        hs(800, 1420, "write", 20),
        marker(810, 1430, EXIT),
    ]
    tiling = tile(events, "client", 100, 810)
    assert tiling.names[-2:] == ("client_certificate", "finished")
    assert tiling.bounds[-3:] == (760, 790, 810)


def test_failure_ends_in_the_phase_in_progress() -> None:
    events = [*TLS13_CLIENT[:7], (650, 1300, "write", 21, 42, b"\x02\x2a"), marker(655, 1305, EXIT)]
    tiling = tile(events, "client", 100, 655)
    assert tiling.names[-1] == "certificate"
    assert tiling.bounds[-1] == 655


def test_cpu_between_calls_is_not_counted() -> None:
    # The BIO path: one call per flight; the event loop runs others in between.
    events = [
        marker(0, 0, ENTER),
        hs(10, 10, "write", 1),
        marker(12, 12, EXIT),
        marker(500, 5000, ENTER),
        hs(505, 5005, "read", 2, _SH13),
        hs(510, 5010, "read", 8),
        hs(520, 5020, "read", 11),
        hs(600, 5100, "read", 15),
        hs(610, 5110, "read", 20),
        hs(620, 5120, "write", 20),
        marker(625, 5125, EXIT),
    ]
    tiling = tile(events, "client", 0, 625)
    assert tiling.names[1] == "server_hello"
    assert tiling.cpu[1] == (12 - 10) + (5005 - 5000)
    assert sum(c for c in tiling.cpu if c is not None) == 12 + 125


def test_server_phases_with_sni_callback() -> None:
    events = [
        marker(0, 0, ENTER),
        hs(100, 10, "read", 1),
        marker(101, 11, SNI_START),
        marker(140, 50, SNI_END),
        hs(160, 70, "write", 2, _SH13),
        hs(170, 80, "write", 8),
        hs(180, 90, "write", 11),
        hs(230, 140, "write", 15),
        hs(240, 150, "write", 20),
        hs(400, 160, "read", 20),
        hs(410, 170, "write", 4),
        marker(420, 180, EXIT),
    ]
    tiling = tile(events, "server", 0, 420)
    assert tiling.names == (
        "client_hello",
        "sni_callback",
        "server_hello",
        "server_flight",
        "client_finished",
        "finished",
    )
    assert tiling.bounds[1:3] == (101, 140)
    assert tiling.round_trips == 1


@pytest.mark.parametrize("cut", range(1, len(TLS13_CLIENT)))
def test_any_prefix_still_tiles(cut: int) -> None:
    events = TLS13_CLIENT[:cut]
    end = events[-1][0] + 5
    tiling = tile(events, "client", 100, end)
    assert tiling.bounds[0] == 100
    assert tiling.bounds[-1] == end
    assert list(tiling.bounds) == sorted(tiling.bounds)
    assert len(tiling.names) == len(tiling.bounds) - 1 == len(tiling.cpu)
