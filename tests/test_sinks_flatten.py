"""The flat log form: rules on made-up dicts, and the docs' key table against real spans."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from servers import PKI
from sink_spans import SECRET_URL, FakeRequestSpan, RealSpans, assert_no_secrets, real_spans

from tlstiming._analysis.timeline import PHASE_NAMES
from tlstiming.sinks import CONTEXT_KEYS, LOG_SCHEMA_VERSION, flatten, redact_url, tls_fields
from tlstiming.sinks._flatten import flatten_dict, redact

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"
PHASE_PATTERN = "tls.phase.<name>_ms"


@pytest.fixture(scope="module")
def spans(pki: PKI) -> RealSpans:
    return real_spans(pki)


def _doc_keys() -> list[str]:
    section = DOC.read_text().split("## Log event keys", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


def _collapse(keys: list[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        name = PHASE_PATTERN if re.fullmatch(r"tls\.phase\.\w+_ms", key) else key
        if name not in out:
            out.append(name)
    return out


def test_doc_table_lists_exactly_the_flat_keys(spans: RealSpans) -> None:
    for span in (spans.ok, spans.failed):
        keys = list(flatten_dict(span.to_dict(), drop_none=False))
        documented = [k for k in _doc_keys() if not k.startswith("tls.verify.<name>")]
        assert _collapse(keys) == documented
    assert f"Log schema version: **{LOG_SCHEMA_VERSION}**" in DOC.read_text()


def test_every_phase_key_is_a_documented_phase(spans: RealSpans) -> None:
    for span in (spans.ok, spans.resumed, spans.failed, spans.server):
        for key in flatten(span):
            if key.startswith("tls.phase.") and not key.startswith("tls.phase.verify:"):
                assert key.removeprefix("tls.phase.").removesuffix("_ms") in PHASE_NAMES


def test_flat_values_are_scalars_and_agree_with_the_span(spans: RealSpans) -> None:
    flat = flatten(spans.ok)
    assert all(isinstance(v, str | int | float | bool) for v in flat.values())
    assert flat["tlstiming.log_schema"] == LOG_SCHEMA_VERSION
    assert flat["span.id"] == spans.ok.span_id
    assert flat["tls.handshake.duration_ms"] == round(spans.ok.duration_ns / 1e6, 3)
    assert flat["tls.alpn.offered"] == "h2,http/1.1"
    assert flat["tls.next_protocol"] == "h2"
    assert flat["server.port"] == spans.port
    for phase in spans.ok.phases:
        assert flat[f"tls.phase.{phase.name}_ms"] == round(phase.duration_ns / 1e6, 3)
    assert "error.type" not in flat  # unknown values are left out
    assert flatten(spans.resumed)["tls.resumed"] is True


def test_failure_fields(spans: RealSpans) -> None:
    flat = flatten(spans.failed)
    assert flat["outcome"] == "error"
    assert flat["error.type"] == "ssl.SSLCertVerificationError"
    assert flat["tls.error.reason"] == "CERTIFICATE_VERIFY_FAILED"
    assert isinstance(flat["tls.error.verify_code"], int)


def test_server_side_has_no_server_port(spans: RealSpans) -> None:
    flat = flatten(spans.server)
    assert flat["tls.side"] == "server"
    assert "server.port" not in flat


def test_rules_on_a_made_up_span() -> None:
    data: dict[str, Any] = {
        "tlstiming.schema": "1",
        "tlstiming.kind": "x.thing",
        "span.id": "1",
        "duration_ns": 1_234_567,
        "wait_ns": 2_000_000,
        "start_time_unix_nano": 5,
        "names": ["a", "b"],
        "empty": [],
        "objects": [{"a": 1}],
        "plain": {"a": 1},
        "tlstiming.phases": [{"name": "one", "start_ns": 0, "duration_ns": 250_000}],
        "tlstiming.verifications": [
            {"name": "ocsp", "outcome": "soft_failed", "reason": "timeout", "details": {"a": 1}},
            {"name": "ct", "outcome": "accepted", "reason": None, "details": {}},
        ],
        "url.full": SECRET_URL,
        "url.query": "token=s3cr3t",
        "unknown": None,
    }
    assert flatten_dict(data) == {
        "tlstiming.log_schema": "1",
        "tlstiming.kind": "x.thing",
        "span.id": "1",
        "x.thing.duration_ms": 1.235,
        "wait_ms": 2.0,
        "start_time_unix_nano": 5,
        "names": "a,b",
        "x.phase.one_ms": 0.25,
        "x.verify.ocsp": "soft_failed",
        "x.verify.ocsp.reason": "timeout",
        "x.verify.ct": "accepted",
        "url.full": "https://api.example.test:8443/v1/items",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SECRET_URL, "https://api.example.test:8443/v1/items"),
        ("https://host/", "https://host/"),
        ("http://u@[::1]:80/p?q", "http://[::1]:80/p"),
        ("https://host?x=1", "https://host"),
        ("/relative/path?x=1#y", "/relative/path"),
        ("user:pw@host/path", "host/path"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_request_span_flattens_with_its_handshake(spans: RealSpans) -> None:
    request = FakeRequestSpan(spans.ok)
    flat = flatten(request)
    assert flat["tlstiming.kind"] == "http.request"
    assert flat["span.id"] == request.span_id
    assert flat["http.request.duration_ms"] == 9.0
    assert flat["http.phase.dns_ms"] == 0.9
    assert flat["url.full"] == "https://api.example.test:8443/v1/items"
    assert flat["server.address"] == "api.example.test"  # the outer span wins
    assert flat["tls.handshake.span_id"] == spans.ok.span_id
    assert flat["tls.cipher"] == spans.ok.facts.cipher
    assert f"tls.phase.{spans.ok.phases[0].name}_ms" in flat
    assert_no_secrets([flat, redact(request.to_dict())])


def test_tls_fields(spans: RealSpans) -> None:
    fields = tls_fields(spans.ok)
    assert list(fields) == [k for k in CONTEXT_KEYS if k in fields]
    assert fields["tls.handshake.span_id"] == spans.ok.span_id
    assert fields["tls.protocol.version"] == "1.3"
    assert "span.id" not in fields
    request_fields = tls_fields(FakeRequestSpan(spans.ok))
    assert request_fields["tls.handshake.span_id"] == spans.ok.span_id
    assert request_fields["tls.cipher"] == spans.ok.facts.cipher


def test_request_span_with_a_handshake_attribute_only(spans: RealSpans) -> None:
    flat = flatten(FakeRequestSpan(spans.resumed, nest=False))
    assert flat["tls.handshake.span_id"] == spans.resumed.span_id
    assert flat["tls.resumed"] is True
    assert flat["span.id"] == "00000000000000aa"


def test_only_the_primary_handshake_joins_a_request() -> None:
    proxy = {"tlstiming.kind": "tls.handshake", "span.id": "p", "duration_ns": 1_000_000}
    data = {
        "tlstiming.kind": "http.request",
        "tlstiming.handshake": None,
        "tlstiming.proxy_handshake": {**proxy, "tls.cipher": "TLS_AES_128_GCM_SHA256"},
        "tlstiming.connection.attempts": [{"address": "127.0.0.1"}],
    }
    assert flatten_dict(data) == {
        "tlstiming.log_schema": "1",
        "tlstiming.kind": "http.request",
        "tlstiming.proxy_handshake.span_id": "p",
        "tlstiming.proxy_handshake.duration_ms": 1.0,
    }
