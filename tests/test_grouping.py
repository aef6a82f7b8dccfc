"""SpanList filters and groups by host and port, and request spans by URL."""

from __future__ import annotations

from dataclasses import dataclass

from synthetic_spans import MS, handshake

from tlstiming._recording.delivery import deliver
from tlstiming.testing import Endpoint, SpanCapture, SpanList, endpoint_of, port_of
from tlstiming.testing._report import Tally


@dataclass(frozen=True)
class _Request:
    url: str
    server_port: int
    duration_ns: int = 5 * MS
    server_address: str = "a.test"
    outcome: str = "ok"
    kind: str = "http.request"
    phases: tuple[object, ...] = ()


def test_two_ports_of_one_host_are_two_endpoints() -> None:
    first, second, other = (
        handshake(host="a.test"),
        handshake(host="a.test", port=8443),
        handshake(host="b.test"),
    )
    spans = SpanList([first, second, other])
    assert list(spans.filter(host="a.test", port=8443)) == [second]
    assert list(spans.filter(port=443)) == [first, other]
    assert spans.group_by_endpoint() == {
        Endpoint("a.test", 443): SpanList([first]),
        Endpoint("a.test", 8443): SpanList([second]),
        Endpoint("b.test", 443): SpanList([other]),
    }
    assert str(endpoint_of(second)) == "a.test:8443"
    assert str(Endpoint("::1", 443)) == "[::1]:443"


def test_server_side_handshakes_have_no_port() -> None:
    from test_metrics import _handshake

    server = _handshake(2 * MS, side="server")
    assert port_of(server) is None  # the peer port is the client's own


def test_requests_group_by_url() -> None:
    items = _Request("https://a.test/items", 443)
    users = _Request("https://a.test/users", 443)
    admin = _Request("https://a.test:8443/admin", 8443)
    spans = SpanList([items, users, admin, items])
    assert list(spans.filter(url="https://a.test/users")) == [users]
    assert list(spans.filter(port=8443)) == [admin]
    grouped = spans.group_by_url()
    assert [len(v) for v in grouped.values()] == [2, 1, 1]
    assert list(spans.group_by(lambda s: s.server_address)) == ["a.test"]


def test_capture_groups_like_a_list() -> None:
    with SpanCapture() as capture:
        deliver(None, handshake(port=1))
        deliver(None, handshake(port=2))
    assert sorted(e.port or 0 for e in capture.group_by_endpoint()) == [1, 2]


def test_report_tally_keeps_ports_and_urls_apart_with_phase_percentiles() -> None:
    tally = Tally()
    for ms in (1, 2, 3):
        tally.add(handshake(server_hello_ms=ms))
    tally.add(handshake(port=8443))
    tally.add(_Request("https://a.test/items", 443))
    other = Tally()
    other.merge(tally.dump())
    groups = other.summary()
    keys = [(g["kind"], g["host"], g["port"], g["url"]) for g in groups]
    assert keys == [
        ("http.request", "a.test", 443, "https://a.test/items"),
        ("tls.handshake", "api.test", 443, None),
        ("tls.handshake", "api.test", 8443, None),
    ]
    hello = groups[1]["phases"]["server_hello"]
    assert hello == {"count": 3, "p50_ms": 2.0, "p95_ms": 3.0, "max_ms": 3.0}
    lines = Tally.lines(groups)
    assert "https://a.test/items" in lines[1]
    assert any("api.test:8443" in line for line in lines)
