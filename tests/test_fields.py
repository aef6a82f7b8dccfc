"""One table per span kind: to_dict() and the flat log fields from the same rows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import PKI
from sink_spans import RealSpans, real_spans

from tlstiming import HandshakeSpan
from tlstiming.sinks import flatten
from tlstiming.sinks._flatten import flatten_dict
from tlstiming.spans.export import HANDSHAKE
from tlstiming.spans.fields import Field, Table, of
from tlstiming.spans.request import ConnectAttempt, ConnectionInfo, RequestRecord, RequestSpan
from tlstiming.spans.request_export import REQUEST

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
MS = 1_000_000


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


@dataclass(frozen=True)
class URL:
    scheme: str = "https"
    host: str = "api.example.test"
    port: int | None = 8443
    raw_path: bytes = b"/v1/items?token=s3cr3t"


def request(
    handshake: HandshakeSpan | None,
    *,
    reused: bool = False,
    error: str | None = None,
    proxy: HandshakeSpan | None = None,
) -> RequestSpan:
    """A GET around ``handshake`` (or a reused connection), with made-up times."""
    start = handshake.start_ns if handshake is not None else 10 * MS
    end = handshake.end_ns if handshake is not None else start + 5 * MS
    r = RequestRecord(0xAA, start - 3 * MS, "GET", URL())
    r.end_ns, r.end_unix_ns = end + 2 * MS, 1_700_000_000_000_000_000
    if reused:
        r.reused, r.idle_ns, r.write_ns = True, 5_000, start
    else:
        r.marks = [("dns", start - 2 * MS), ("connect", start - MS), ("tls", start)]
        r.write_ns = end
    r.sent_ns = end + MS // 2
    if error is None:
        r.head_ns, r.status_code, r.http_version = end + MS, 200, b"HTTP/1.1"
    else:
        r.error_type, r.error_message = error, "boom"
    attempt = ConnectAttempt(address="127.0.0.1", port=8443, start_ns=start - MS, end_ns=start)
    r.connection = ConnectionInfo(
        opened_by=f"{0xAA:016x}",
        handshake=handshake,
        proxy_handshake=proxy,
        resolved=("127.0.0.1", "::1"),
        attempts=(attempt,),
        proxied=proxy is not None,
    )
    return RequestSpan(r)


def requests(spans: RealSpans) -> list[RequestSpan]:
    return [
        request(spans.ok),
        request(spans.failed, error="ssl.SSLCertVerificationError"),
        request(spans.ok, reused=True),
        request(spans.resumed, proxy=spans.ok),
        request(None, error="httpx.ConnectError"),
    ]


def test_flat_fields_from_the_table_are_the_flattened_dict(spans: RealSpans) -> None:
    """The flat form from the table is what the rules by key make of to_dict(), in order."""
    everything: list[Any] = [spans.ok, spans.failed, spans.resumed, spans.server, *requests(spans)]
    for span in everything:
        by_rules = flatten_dict(span.to_dict())
        flat = flatten(span)
        assert flat == by_rules
        assert list(flat) == list(by_rules)


def test_request_dict_keys_are_the_documented_ones(spans: RealSpans) -> None:
    section = SCHEMA.read_text().split("## Request span keys", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)
    for span in requests(spans):
        assert list(span.to_dict()) == documented
    assert list(request(spans.ok).to_dict()["tlstiming.connection.attempts"][0]) == [
        "address",
        "port",
        "start_ns",
        "duration_ns",
        "error.type",
        "error.message",
    ]


def test_a_request_nests_its_handshake_whole_and_joins_its_flat_fields(spans: RealSpans) -> None:
    span = request(spans.ok, proxy=spans.resumed)
    data = span.to_dict()
    assert data["tlstiming.handshake"] == spans.ok.to_dict()
    assert data["tlstiming.proxy_handshake"] == spans.resumed.to_dict()
    flat = flatten(span)
    assert flat["span.id"] == span.span_id
    assert flat["tls.handshake.span_id"] == spans.ok.span_id
    assert flat["tls.cipher"] == spans.ok.facts.cipher
    assert flat["server.port"] == 8443  # the request's own key wins
    assert flat["url.full"] == "https://api.example.test:8443/v1/items"
    assert flat["tlstiming.proxy_handshake.span_id"] == spans.resumed.span_id
    own = REQUEST.flat(span, nested_spans=False)
    assert "tls.cipher" not in own
    assert "tlstiming.proxy_handshake.span_id" not in own
    assert own["http.request.duration_ms"] == flat["http.request.duration_ms"]


def test_timeline_false_leaves_the_lists_of_objects_out(spans: RealSpans) -> None:
    brief = HANDSHAKE.nested(spans.ok, timeline=False)
    full = spans.ok.to_dict()
    assert list(brief) == list(full)
    objects = {"tls.server.chain", "tlstiming.messages", "tlstiming.records"}
    assert {k for k in brief if brief[k] != full[k]} == objects
    assert all(brief[k] is None for k in objects)


# -- the table's rules, on made-up spans ------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    start_ns: int
    duration_ns: int
    cpu_ns: int | None = None


@dataclass(frozen=True)
class Check:
    name: str
    start_ns: int
    duration_ns: int
    outcome: str
    reason: str | None
    details: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Thing:
    """A made-up span kind ``x.thing``."""

    span_id: str = "1"
    start_ns: int = 1_000
    duration_ns: int = 1_234_567
    wait_ns: int | None = 2_000_000
    url: str = "https://user:pw@host:1/p?q=1#f"
    names: tuple[str, ...] = ("a", "b")
    steps: tuple[Step, ...] = (Step("one", 1_000, 250_000), Step("two", 251_000, 2_000))
    checks: tuple[Check, ...] = (Check("ocsp", 2_000, 10, "soft_failed", "timeout"),)
    inner: Thing | None = None
    ref: Thing | None = None
    reads: list[str] = field(default_factory=list)

    def objects(self) -> list[dict[str, int]]:
        self.reads.append("objects")
        return [{"a": 1}]

    def to_dict(self) -> dict[str, Any]:
        return THING.nested(self)


ROWS: list[Field[Thing]] = [
    Field("span.id", "value", of("span_id")),
    Field("schema", "nested", lambda _span: "1"),
    Field("flat.only", "flat", lambda _span: "f"),
    Field("duration_ns", "ns", of("duration_ns")),
    Field("wait_ns", "ns", of("wait_ns")),
    Field("url.full", "url", of("url")),
    Field("names", "strings", of("names")),
    Field("objects", "objects", lambda span: span.objects()),
    Field("steps", "phases", of("steps")),
    Field("checks", "verifications", of("checks")),
]
PLAIN: Table[Thing, Thing] = Table("x.thing", lambda span: span, ROWS)
THING: Table[Thing, Thing] = Table(
    "x.thing",
    lambda span: span,
    [
        *ROWS,
        Field("inner", "span", of("inner"), PLAIN),
        Field("ref", "span_ref", of("ref")),
    ],
)


def test_nested_form_of_each_unit() -> None:
    thing = Thing(ref=Thing(span_id="2"))
    assert THING.nested(thing) == {
        "span.id": "1",
        "schema": "1",
        "duration_ns": 1_234_567,
        "wait_ns": 2_000_000,
        "url.full": "https://user:pw@host:1/p?q=1#f",
        "names": ["a", "b"],
        "objects": [{"a": 1}],
        "steps": [
            {"name": "one", "start_ns": 0, "duration_ns": 250_000, "cpu_ns": None},
            {"name": "two", "start_ns": 250_000, "duration_ns": 2_000, "cpu_ns": None},
        ],
        "checks": [
            {
                "name": "ocsp",
                "start_ns": 1_000,
                "duration_ns": 10,
                "outcome": "soft_failed",
                "reason": "timeout",
                "details": {},
            }
        ],
        "inner": None,
        "ref": thing.ref.to_dict() if thing.ref else None,
    }
    assert THING.nested(thing, timeline=False)["objects"] is None


def test_flat_form_of_each_unit_never_reads_objects() -> None:
    inner = Thing(span_id="9", duration_ns=3 * MS, names=(), wait_ns=None)
    thing = Thing(inner=inner, ref=Thing(span_id="2", duration_ns=MS))
    assert THING.flat(thing) == {
        "tlstiming.log_schema": "1",
        "span.id": "1",
        "flat.only": "f",
        "x.thing.duration_ms": 1.235,
        "wait_ms": 2.0,
        "url.full": "https://host:1/p",
        "names": "a,b",
        "x.phase.one_ms": 0.25,
        "x.phase.two_ms": 0.002,
        "x.verify.ocsp": "soft_failed",
        "x.verify.ocsp.reason": "timeout",
        "x.thing.span_id": "9",  # the joined span's own id; its other keys lose to the outer's
        "ref.span_id": "2",
        "ref.duration_ms": 1.0,
    }
    assert thing.reads == [] and inner.reads == []
    own = THING.flat(thing, nested_spans=False)
    assert "x.thing.span_id" not in own and "ref.span_id" not in own


def test_a_span_row_needs_its_table() -> None:
    with pytest.raises(AssertionError, match="needs its table"):
        Table("x.bad", lambda span: span, [Field("inner", "span", of("inner"))])


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("a",), {"a": 1}, 1),
        (("a", "b"), {"a": {"b": 2}}, 2),
        (("a", "b"), {"a": None}, None),
        (("a", "b", "c"), {"a": {"b": {"c": 3}}}, 3),
        (("a", "b", "c"), {"a": {"b": None}}, None),
    ],
)
def test_of_stops_at_none(path: tuple[str, ...], value: dict[str, Any], expected: Any) -> None:
    def obj(d: Any) -> Any:
        if not isinstance(d, dict):
            return d
        return type("O", (), {k: obj(v) for k, v in d.items()})()

    assert of(*path)(obj(value)) == expected
