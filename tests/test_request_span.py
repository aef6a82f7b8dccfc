"""The pure request-span core: marks -> phases, with made-up timestamps and exact asserts."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from tlstiming.spans.request import (
    EXTENSION_KEY,
    PHASE_NAMES,
    ConnectAttempt,
    ConnectionInfo,
    Mark,
    RequestRecord,
    RequestSpan,
    tile,
)


@dataclass(frozen=True)
class URL:
    scheme: str = "https"
    host: str = "example.test"
    port: int | None = None
    raw_path: bytes = b"/a/b"


def record(**fields: object) -> RequestRecord:
    r = RequestRecord(0x1234, 1000, "GET", fields.pop("url", URL()))  # type: ignore[arg-type]
    for name, value in fields.items():
        setattr(r, name, value)
    return r


CASES: list[tuple[str, list[Mark], int, list[tuple[str, int, int]]]] = [
    (
        "fresh TLS connection",
        [("dns", 1010), ("connect", 1030), ("tls", 1100), ("send_request", 1500)],
        2000,
        [
            ("pool_wait", 1000, 1010),
            ("dns", 1010, 1030),
            ("connect", 1030, 1100),
            ("tls", 1100, 1500),
            ("send_request", 1500, 2000),
        ],
    ),
    (
        "a retry folds the failed attempt and the backoff",
        [("dns", 1010), ("connect", 1020), ("retry", 1040), ("dns", 1300), ("connect", 1310)],
        1400,
        [
            ("pool_wait", 1000, 1010),
            ("retry", 1010, 1300),
            ("dns", 1300, 1310),
            ("connect", 1310, 1400),
        ],
    ),
    (
        "CONNECT through an HTTPS proxy",
        [
            ("dns", 1001),
            ("connect", 1002),
            ("proxy_tls", 1003),
            ("proxy_connect", 1004),
            ("tls", 1005),
            ("send_request", 1006),
        ],
        1007,
        [
            ("pool_wait", 1000, 1001),
            ("dns", 1001, 1002),
            ("connect", 1002, 1003),
            ("proxy_tls", 1003, 1004),
            ("proxy_connect", 1004, 1005),
            ("tls", 1005, 1006),
            ("send_request", 1006, 1007),
        ],
    ),
    (
        "clock disorder is clamped, repeated marks merge",
        [("dns", 990), ("dns", 1005), ("connect", 3000)],
        2000,
        [("pool_wait", 1000, 1000), ("dns", 1000, 2000), ("connect", 2000, 2000)],
    ),
    ("no marks: all pool_wait", [], 1500, [("pool_wait", 1000, 1500)]),
]


@pytest.mark.parametrize(("name", "marks", "end", "expected"), CASES, ids=[c[0] for c in CASES])
def test_tile(name: str, marks: list[Mark], end: int, expected: list[tuple[str, int, int]]) -> None:
    names, bounds = tile(1000, marks, end)
    assert list(zip(names, bounds, bounds[1:], strict=False)) == expected
    assert bounds[0] == 1000
    assert bounds[-1] == end
    assert all(a <= b for a, b in itertools.pairwise(bounds))
    assert set(names) <= set(PHASE_NAMES)


def test_reused_connection_span() -> None:
    r = record(
        write_ns=1100,
        sent_ns=1150,
        head_ns=1400,
        end_ns=1500,
        end_unix_ns=9_000_500,
        status_code=200,
        http_version=b"HTTP/1.1",
        reused=True,
        idle_ns=77,
        connection=ConnectionInfo(opened_by="00000000000000aa"),
    )
    span = RequestSpan(r)
    assert [(p.name, p.start_ns, p.end_ns) for p in span.phases] == [
        ("pool_wait", 1000, 1100),
        ("send_request", 1100, 1150),
        ("wait_first_byte", 1150, 1400),
        ("receive_body", 1400, 1500),
    ]
    assert sum(p.duration_ns for p in span.phases) == span.duration_ns == 500
    assert span.start_unix_ns == 9_000_000
    assert span.span_id == "0000000000001234"
    assert span.kind == "http.request"
    assert span.outcome == "ok"
    assert span.error is None
    assert span.reused
    assert span.idle_ns == 77
    assert span.handshake is None  # reused: the handshake belongs to the opener
    assert span.http_version == "1.1"
    assert span.phase("tls") is None
    assert span.phase("send_request") is not None


def test_failure_names_the_phase_in_progress() -> None:
    r = record(
        marks=[("dns", 1010), ("connect", 1020)],
        end_ns=1090,
        error_type="httpx.ConnectError",
        error_message="[Errno 111] Connection refused",
        connection=ConnectionInfo(
            opened_by="0000000000001234",
            resolved=("127.0.0.1",),
            attempts=(
                ConnectAttempt(
                    address="127.0.0.1",
                    port=1,
                    start_ns=1020,
                    end_ns=1090,
                    error_type="ConnectionRefusedError",
                    error_message="[Errno 111] Connection refused",
                ),
            ),
        ),
    )
    span = RequestSpan(r)
    assert span.outcome == "error"
    assert span.error is not None
    assert span.error.phase == "connect"
    assert span.status_code is None
    assert span.http_version is None
    assert span.connection is not None
    assert span.connection.peer is None
    assert span.connection.attempts[0].duration_ns == 70
    data = span.to_dict()
    assert data["tlstiming.failed_phase"] == "connect"
    assert data["tlstiming.connection.attempts"][0]["start_ns"] == 20
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("url", "full", "port"),
    [
        (URL(raw_path=b"/p?token=secret"), "https://example.test/p", 443),
        (URL(scheme="http", port=8080, raw_path=b"/"), "http://example.test:8080/", 8080),
        (URL(host="::1", port=8443, raw_path=b"/x%20y?q"), "https://[::1]:8443/x%20y", 8443),
    ],
)
def test_url_never_carries_the_query(url: URL, full: str, port: int) -> None:
    span = RequestSpan(record(url=url, end_ns=2000))
    assert span.url == full
    assert span.server_port == port
    assert "secret" not in json.dumps(span.to_dict())


def test_span_needs_a_finished_record_and_is_read_only() -> None:
    with pytest.raises(ValueError, match="finished"):
        RequestSpan(record())
    span = RequestSpan(record(end_ns=1001))
    with pytest.raises(AttributeError):
        span.status_code = 500  # type: ignore[misc]
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(span)
    assert EXTENSION_KEY == "tlstiming.request_span"
