"""Findings: each rule against a real loopback server that reproduces its cause.

Every case runs on both hot paths. Healthy servers (TLS 1.3, resumed, RSA
leaf) give no finding of severity warning or above.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import OpenSSLFactory, ServeFactory
from servers import PKI, connect, server_context

import tlstiming
from tlstiming import HandshakeSpan, SpanRecorder, TimedSSLContext
from tlstiming.diagnosis import RULES, THRESHOLDS, Finding, diagnose, severity_rank, worst
from tlstiming.testing import CA

pytestmark = pytest.mark.usefixtures("implementation")

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def _client(pki: PKI, recorder: SpanRecorder, **kwargs: Any) -> TimedSSLContext:
    context = tlstiming.create_default_context(cadata=pki.ca_pem, **kwargs)
    context.add_sink(recorder)
    return context


def _one_span(
    context: TimedSSLContext, address: tuple[str, int], recorder: SpanRecorder, **kw: Any
) -> HandshakeSpan:
    try:
        with connect(context, address, **kw) as tls:
            tls.recv(1)
    except (OSError, ssl.SSLError):
        pass
    return recorder.spans[-1]


def _ids(findings: tuple[Finding, ...]) -> list[str]:
    return [f.id for f in findings]


def _alarming(findings: tuple[Finding, ...]) -> list[str]:
    return [f.id for f in findings if severity_rank(f.severity) >= 1]


# -- healthy servers: nothing to warn about --------------------------------------------


@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_a_healthy_server_gives_no_warning(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, version: ssl.TLSVersion
) -> None:
    context = _client(pki, recorder)
    context.maximum_version = version  # a client that offers what the server speaks
    server = serve(server_context(pki.leaf, alpn=["h2", "http/1.1"]))
    context.set_alpn_protocols(["h2", "http/1.1"])
    span = _one_span(context, server.address, recorder)
    assert span.outcome == "ok"
    assert _alarming(diagnose(span)) == []


def test_a_resumed_handshake_and_its_collection_give_no_warning(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    server = serve(server_context(pki.leaf))
    with connect(context, server.address) as first:
        first.recv(1)
        session = first.session
    with connect(context, server.address, session=session) as second:
        second.recv(1)
        assert second.session_reused
    assert _alarming(diagnose(recorder.spans)) == []


def test_an_rsa_leaf_gives_no_warning(serve: ServeFactory, recorder: SpanRecorder) -> None:
    ca = CA(key_type="rsa")
    leaf = ca.issue_cert("localhost", key_type="rsa")
    context = tlstiming.create_default_context(cadata=ca.cert_pem.bytes().decode())
    context.add_sink(recorder)
    span = _one_span(context, serve(server_context(leaf)).address, recorder)
    assert span.outcome == "ok"
    assert _alarming(diagnose(span)) == []


# -- one cause each ------------------------------------------------------------------------


def test_not_tls_peer_says_what_it_looks_like(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    span = _one_span(_client(pki, recorder), serve(mode="not_tls").address, recorder)
    (finding,) = [f for f in diagnose(span) if f.id == "tls.not_tls_peer"]
    assert finding.severity == "error"
    assert "plain HTTP" in finding.title
    assert str(finding.get("first_bytes")).startswith("H")


@pytest.mark.openssl
def test_alpn_refused_names_the_offer(
    openssl_serve: OpenSSLFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    context.set_alpn_protocols(["h2"])
    server = openssl_serve(pki.leaf, ["-alpn", "http/1.1"])
    span = _one_span(context, server.address, recorder)
    finding = _only(diagnose(span), "tls.alpn_refused")
    assert finding.get("alpn_offered") == ("h2",)
    assert finding.severity == "error"


def test_h2_fallback_is_named(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    context = _client(pki, recorder)
    context.set_alpn_protocols(["h2", "http/1.1"])
    span = _one_span(context, serve(server_context(pki.leaf, alpn=["http/1.1"])).address, recorder)
    finding = _only(diagnose(span), "tls.alpn_h2_not_selected")
    assert finding.severity == "warning"
    assert finding.get("alpn_selected") == "http/1.1"


def test_hello_retry_names_the_groups_and_the_extra_round_trip(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    span = _one_span(
        _client(pki, recorder),
        serve(server_context(pki.leaf, ecdh_curve="secp384r1")).address,
        recorder,
    )
    finding = _only(diagnose(span), "tls.hello_retry")
    assert finding.get("hello_retry_group") == "secp384r1"
    assert "secp384r1" not in finding.get("key_share_groups_offered")
    retry = span.phase("hello_retry")
    assert retry is not None
    assert finding.get("extra_round_trip_ms") == round(retry.duration_ns / 1e6, 3)
    assert "secp384r1" in finding.hint


def test_tls12_round_trip(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    span = _one_span(
        _client(pki, recorder),
        serve(server_context(pki.leaf, maximum_version=TLS12)).address,
        recorder,
    )
    finding = _only(diagnose(span), "tls.tls12_round_trip")
    second = span.phase("second_round_trip")
    assert second is not None
    assert finding.get("second_round_trip_ms") == round(second.duration_ns / 1e6, 3)
    assert finding.side == "server"


def test_missing_intermediate_is_chain_incomplete(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    server = serve(server_context(pki.chained, send_intermediates=False))
    span = _one_span(_client(pki, recorder), server.address, recorder)
    assert span.outcome == "error"
    findings = diagnose(span)
    ids = _ids(findings)
    assert "tls.chain_incomplete" in ids
    assert "tls.certificate_untrusted" not in ids
    finding = _only(findings, "tls.chain_incomplete")
    checked = span.facts.chain_verification  # OpenSSL's own account, with native hooks
    if checked is not None:
        assert (finding.get("failed_at_depth"), finding.get("chain_built")) == (0, 1)
    else:
        assert finding.get("failed_at_depth") is None


def test_an_unknown_ca_is_untrusted_not_incomplete(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    chained = pki.other_ca.create_child_ca().issue_cert("localhost")  # full chain, unknown root
    for cert in (chained, CA().issue_cert("localhost")):
        span = _one_span(_client(pki, recorder), serve(server_context(cert)).address, recorder)
        ids = _ids(diagnose(span))
        if cert is chained:
            assert "tls.certificate_untrusted" in ids
            assert "tls.chain_incomplete" not in ids
        else:  # a leaf alone, from a CA nobody trusts: the chain as sent cannot tell
            assert ids.count("tls.chain_incomplete") + ids.count("tls.certificate_untrusted") == 1


def test_a_self_signed_server_is_untrusted(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, tmp_path: Path
) -> None:
    ca = CA()  # a CA certificate served as the server's own: self-signed
    both = tmp_path / "self.pem"
    both.write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(both)
    span = _one_span(_client(pki, recorder), serve(context).address, recorder)
    finding = _only(diagnose(span), "tls.certificate_untrusted")
    assert finding.get("verify_code") == 18


def test_expired_certificate(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    span = _one_span(_client(pki, recorder), serve(server_context(pki.expired)).address, recorder)
    finding = _only(diagnose(span), "tls.certificate_expired")
    assert float(finding.get("days_past")) > 0


def test_expiring_certificate_severity_follows_days_left(
    serve: ServeFactory, recorder: SpanRecorder
) -> None:
    import datetime

    ca = CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    severities = []
    for days in (5, 20, 90):
        leaf = ca.issue_cert("localhost", not_after=now + datetime.timedelta(days=days))
        context = tlstiming.create_default_context(cadata=ca.cert_pem.bytes().decode())
        context.add_sink(recorder)
        span = _one_span(context, serve(server_context(leaf)).address, recorder)
        found = [f for f in diagnose(span) if f.id == "tls.certificate_expiring"]
        severities.append(found[0].severity if found else None)
    assert severities == ["warning", "info", None]


def test_hostname_mismatch(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    server = serve(server_context(pki.wildcard))
    span = _one_span(_client(pki, recorder), server.address, recorder)
    finding = _only(diagnose(span), "tls.certificate_hostname_mismatch")
    assert finding.get("server_hostname") == "localhost"
    assert "*.example.test" in finding.get("certificate_names")


def test_client_certificate_required(serve: ServeFactory, pki: PKI, recorder: SpanRecorder) -> None:
    for version in (TLS13, TLS12):
        server = serve(server_context(pki.leaf, maximum_version=version, client_ca=pki.ca))
        span = _one_span(_client(pki, recorder), server.address, recorder)
        assert span.outcome == "error", version
        finding = _only(diagnose(span), "tls.client_certificate_required")
        assert finding.get("certificate_sent") is False


def test_chain_sends_root(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, tmp_path: Path
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.leaf.private_key_and_cert_chain_pem.bytes() + pki.ca.cert_pem.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    span = _one_span(_client(pki, recorder), serve(context).address, recorder)
    finding = _only(diagnose(span), "tls.chain_sends_root")
    assert finding.severity == "info"
    assert finding.get("root_bytes") == span.facts.certificates[-1].size


def test_large_certificate_flight(serve: ServeFactory, recorder: SpanRecorder) -> None:
    ca = CA(key_type="rsa")
    names = [f"host{i}.example.test" for i in range(1000)]
    leaf = ca.issue_cert("localhost", *names, key_type="rsa")
    context = tlstiming.create_default_context(cadata=ca.cert_pem.bytes().decode())
    context.add_sink(recorder)
    span = _one_span(context, serve(server_context(leaf)).address, recorder)
    finding = _only(diagnose(span), "tls.certificate_flight_large")
    assert (
        finding.get("certificate_bytes")
        == span.facts.certificate_bytes
        > THRESHOLDS["initial_window_bytes"]
    )


def test_slow_first_flight_needs_the_round_trip(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    delay = THRESHOLDS["first_flight_excess_ms"] / 1000 * 2

    def slow(conn: Any, name: str | None, context: ssl.SSLContext) -> None:
        time.sleep(delay)  # the server's own work before its ServerHello

    server_ctx = server_context(pki.leaf)
    server_ctx.sni_callback = slow
    span = _one_span(_client(pki, recorder), serve(server_ctx).address, recorder)
    assert "tls.server_slow_first_flight" not in _ids(diagnose(span))  # no RTT known
    phase = span.phase("server_hello")
    assert phase is not None
    finding = _only(diagnose(span, rtt_ns=phase.duration_ns // 100), "tls.server_slow_first_flight")
    assert finding.get("rtt_ms") < finding.get("server_hello_ms")


def test_slow_verifier_is_its_own_finding(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    context.add_verifier(
        lambda peer: time.sleep(THRESHOLDS["verifier_slow_ms"] / 1000 * 2), name="slowpoke"
    )
    span = _one_span(context, serve(server_context(pki.leaf)).address, recorder)
    finding = _only(diagnose(span), "tls.verifier_slow")
    assert finding.get("verifier") == "slowpoke"


def test_trust_store_loaded_per_connection(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    server = serve(server_context(pki.leaf))
    for _ in range(2):
        context.load_verify_locations(cadata=pki.ca_pem)  # what urllib3 does with CA paths
        _one_span(context, server.address, recorder)
    assert "tls.trust_store_per_connection" not in _ids(diagnose(recorder.spans[0]))
    finding = _only(diagnose(recorder.spans[1]), "tls.trust_store_per_connection")
    assert finding.get("loads_for_this_connection") == 1


def test_a_context_per_connection_is_seen_over_a_collection(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    server = serve(server_context(pki.leaf))
    for _ in range(3):
        _one_span(_client(pki, recorder), server.address, recorder)
    finding = _only(diagnose(recorder.spans), "tls.trust_store_per_connection")
    assert finding.get("connections") == 3
    assert len(finding.span_ids) == 3


@pytest.mark.parametrize("offer", [False, True])
def test_no_resumption_says_who_did_not(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder, offer: bool
) -> None:
    context = _client(pki, recorder)
    server_ctx = server_context(pki.leaf)
    server_ctx.options |= ssl.OP_NO_TICKET
    server_ctx.num_tickets = 0
    server = serve(server_ctx)
    session = None
    for _ in range(3):
        with connect(context, server.address, session=session if offer else None) as tls:
            tls.recv(1)
            session = tls.session
    finding = _only(diagnose(recorder.spans), "tls.no_resumption")
    assert finding.get("connections") == 3
    refused = "refused" in finding.title
    assert refused is (finding.get("offered", 0) > 0)


# -- the engine ------------------------------------------------------------------------------


def test_every_rule_id_is_documented_and_unique_per_scope() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "diagnosis.md").read_text(encoding="utf-8")
    keys = [(r.id, r.scope) for r in RULES]
    assert len(keys) == len(set(keys))
    for rule in RULES:
        assert f"`{rule.id}`" in text, rule.id


def test_findings_are_worst_first_and_serializable(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    context.set_alpn_protocols(["h2", "http/1.1"])
    server = serve(
        server_context(pki.leaf, maximum_version=TLS12, alpn=["http/1.1"], ecdh_curve="secp384r1")
    )
    findings = diagnose(_one_span(context, server.address, recorder))
    ranks = [severity_rank(f.severity) for f in findings]
    assert ranks == sorted(ranks, reverse=True)
    assert worst(findings) == "warning"
    for finding in findings:
        exported = finding.to_dict()
        assert exported["id"] == finding.id
        assert exported["docs"].startswith("docs/diagnosis.md#")


def test_peer_text_in_titles_is_escaped(
    serve: ServeFactory, pki: PKI, recorder: SpanRecorder
) -> None:
    context = _client(pki, recorder)
    context.set_alpn_protocols(["h2", "evil\nINFO forged"])
    server = serve(server_context(pki.leaf, alpn=["http/1.1"]))
    span = _one_span(context, server.address, recorder)
    for finding in diagnose(span):
        assert "\n" not in finding.title + finding.hint


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        diagnose("span")
    with pytest.raises(TypeError):
        diagnose([object()])
    with pytest.raises(ValueError, match="severity"):
        severity_rank("fatal")


def _only(findings: tuple[Finding, ...], rule_id: str) -> Finding:
    matching = [f for f in findings if f.id == rule_id]
    assert len(matching) == 1, (rule_id, _ids(findings))
    return matching[0]


_unused: Callable[..., Any] = socket.create_connection
