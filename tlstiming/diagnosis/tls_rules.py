"""The rules over one handshake span: the TLS causes of a slow or failing handshake."""

from __future__ import annotations

import datetime
from typing import Any, Final

from tlstiming.diagnosis.finding import Severity
from tlstiming.diagnosis.rules import THRESHOLDS, Context, Hit, Rule, ms
from tlstiming.diagnosis.x509 import cert_facts
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["HANDSHAKE_RULES"]

# X.509 verify codes (OpenSSL's X509_V_ERR_*) the rules tell apart.
_UNABLE_TO_GET_ISSUER: Final = frozenset({2, 20, 21})
_NOT_YET_VALID: Final = 9
_EXPIRED: Final = 10
_SELF_SIGNED: Final = frozenset({18, 19})
_HOSTNAME_MISMATCH: Final = frozenset({62, 64})

_BANNERS: Final = {
    ord("H"): "plain HTTP (an 'HTTP/' response)",
    ord("S"): "an SSH server ('SSH-' banner)",
    ord("2"): "an SMTP or FTP server ('220' banner)",
    ord("+"): "a POP3 server ('+OK' banner)",
    ord("*"): "an IMAP server ('* OK' banner)",
    ord("<"): "HTML or XML",
    ord("{"): "JSON",
    ord("R"): "a Redis server ('-ERR'/'RESP')",
}


def _verify_code(span: HandshakeSpan) -> int | None:
    error = span.error
    return None if error is None else error.verify_code


def _leaf_day_delta(span: HandshakeSpan) -> tuple[float, str] | None:
    """Days from the handshake to the leaf's notAfter (negative: expired), and notAfter."""
    chain = span.facts.certificates if span.side == "client" else span.facts.client_certificates
    if not chain or chain[0].parse_error:  # placeholders are no dates to judge by
        return None
    start = datetime.datetime.fromtimestamp(span.start_unix_ns / 1e9, datetime.timezone.utc)
    not_after = chain[0].not_after
    return (not_after - start).total_seconds() / 86400, not_after.isoformat()


# -- the peer is not TLS -------------------------------------------------------------


def _not_tls(span: HandshakeSpan, ctx: Context) -> Hit | None:
    first = next((r for r in span.records if r.direction == "received"), None)
    if span.outcome != "error" or first is None or not first.content_type.startswith("unknown("):
        return None
    byte = int(first.content_type[len("unknown(") : -1])
    tail = first.length.to_bytes(2, "big")
    shown = bytes([byte]) + b"??" + tail
    looks = _BANNERS.get(byte, "bytes that are not a TLS record")
    return Hit({"first_bytes": shown.decode("latin-1"), "looks_like": looks})


# -- ALPN ------------------------------------------------------------------------------


def _alpn_refused(span: HandshakeSpan, ctx: Context) -> Hit | None:
    error = span.error
    if error is None or error.alert != "no_application_protocol":
        return None
    return Hit({"alpn_offered": span.facts.alpn_offered, "alert_source": error.alert_source})


def _h2_not_selected(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if span.side != "client" or span.outcome != "ok" or "h2" not in facts.alpn_offered:
        return None  # the client's view: it offered h2
    if facts.alpn_selected == "h2":
        return None
    # A warning when the client preferred h2 and got HTTP/1.1; info when it preferred
    # http/1.1 itself or the server negotiates no ALPN at all (many non-HTTP services).
    preferred = facts.alpn_offered[0] == "h2" and facts.alpn_selected is not None
    return Hit(
        {"alpn_offered": facts.alpn_offered, "alpn_selected": facts.alpn_selected or "none"},
        severity="warning" if preferred else "info",
    )


# -- round trips -------------------------------------------------------------------------


def _hello_retry(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if not facts.hello_retry:
        return None
    retry = span.phase("hello_retry")
    return Hit(
        {
            "key_share_groups_offered": facts.key_share_groups_offered,
            "hello_retry_group": facts.hello_retry_group or "unknown",
            "extra_round_trip_ms": ms(retry.duration_ns) if retry else None,
        }
    )


def _tls12(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    second = span.phase("second_round_trip")
    if facts.protocol_version != "1.2" or "1.3" not in facts.versions_offered or second is None:
        return None
    return Hit(
        {"versions_offered": facts.versions_offered, "second_round_trip_ms": ms(second.duration_ns)}
    )


def _slow_first_flight(span: HandshakeSpan, ctx: Context) -> Hit | None:
    phase = span.phase("server_hello")
    if span.side != "client" or ctx.rtt_ns is None or phase is None:
        return None
    wait = phase.wait_ns if phase.wait_ns is not None else phase.duration_ns
    excess = wait - ctx.rtt_ns
    if excess < THRESHOLDS["first_flight_excess_ms"] * 1e6:
        return None
    if wait < THRESHOLDS["first_flight_rtt_factor"] * ctx.rtt_ns:
        return None
    return Hit(
        {
            "server_hello_ms": ms(phase.duration_ns),
            "rtt_ms": ms(ctx.rtt_ns),
            "excess_ms": ms(excess),
            "client_cpu_ms": ms(phase.cpu_ns),
        }
    )


def _client_cpu(span: HandshakeSpan, ctx: Context) -> Hit | None:
    cpu = span.cpu_ns
    if cpu is None or span.duration_ns <= 0:
        return None
    if (
        cpu < THRESHOLDS["client_cpu_ms"] * 1e6
        or cpu < THRESHOLDS["client_cpu_share"] * span.duration_ns
    ):
        return None
    heaviest = sorted(span.phases, key=lambda p: p.cpu_ns or 0, reverse=True)[:3]
    return Hit(
        {
            "cpu_ms": ms(cpu),
            "duration_ms": ms(span.duration_ns),
            "heaviest_phases": tuple(f"{p.name} {ms(p.cpu_ns or 0)} ms" for p in heaviest),
        }
    )


# -- the certificate chain -------------------------------------------------------------


def _chain_reaches_an_issuer(span: HandshakeSpan) -> bool:
    """The chain as sent ends in a self-signed certificate or a CA certificate."""
    chain = span.facts.certificates
    if not chain:
        return False
    last = chain[-1]
    return last.self_signed or (
        len(chain) > 1 and cert_facts(span.facts.certificates_der[-1]).is_ca
    )


def _chain_incomplete(span: HandshakeSpan, ctx: Context) -> Hit | None:
    if span.side != "client" or _verify_code(span) not in _UNABLE_TO_GET_ISSUER:
        return None
    chain = span.facts.certificates
    if not chain or _chain_reaches_an_issuer(span):
        return None
    leaf = cert_facts(span.facts.certificates_der[0])
    return Hit(
        {
            "certificates_sent": len(chain),
            "last_sent": chain[-1].subject,
            "missing_issuer": chain[-1].issuer,
            "issuer_url": leaf.ca_issuers[0] if leaf.ca_issuers else None,
        }
    )


def _untrusted(span: HandshakeSpan, ctx: Context) -> Hit | None:
    code = _verify_code(span)
    if span.side != "client" or code is None:
        return None
    if code in _SELF_SIGNED or (code in _UNABLE_TO_GET_ISSUER and _chain_reaches_an_issuer(span)):
        chain = span.facts.certificates
        return Hit(
            {
                "verify_code": code,
                "verify_message": span.error.message if span.error else None,
                "top_of_chain": chain[-1].subject if chain else None,
                "top_issuer": chain[-1].issuer if chain else None,
            }
        )
    return None


def _expired(span: HandshakeSpan, ctx: Context) -> Hit | None:
    code = _verify_code(span)
    delta = _leaf_day_delta(span)
    if code not in (_EXPIRED, _NOT_YET_VALID) and not (delta is not None and delta[0] < 0):
        return None
    evidence: dict[str, Any] = {"verify_code": code}
    if delta is not None:
        evidence |= {"not_after": delta[1], "days_past": round(-delta[0], 1)}
    if code == _NOT_YET_VALID:
        return Hit(evidence, title="the certificate is not valid yet (check the clocks)")
    return Hit(evidence)


def _expiring(span: HandshakeSpan, ctx: Context) -> Hit | None:
    delta = _leaf_day_delta(span)
    if (
        span.outcome != "ok"
        or delta is None
        or not 0 <= delta[0] < THRESHOLDS["expiring_info_days"]
    ):
        return None
    severity: Severity = "warning" if delta[0] < THRESHOLDS["expiring_warning_days"] else "info"
    return Hit({"not_after": delta[1], "days_left": round(delta[0], 1)}, severity=severity)


def _hostname(span: HandshakeSpan, ctx: Context) -> Hit | None:
    if span.side != "client" or _verify_code(span) not in _HOSTNAME_MISMATCH:
        return None
    leaf = cert_facts(span.facts.certificates_der[0]) if span.facts.certificates_der else None
    return Hit(
        {
            "server_hostname": span.server_hostname,
            "certificate_names": (leaf.dns_names + leaf.ip_addresses) if leaf else (),
        }
    )


def _sends_root(span: HandshakeSpan, ctx: Context) -> Hit | None:
    chain = span.facts.certificates
    if span.side != "client" or len(chain) < 2 or not chain[-1].self_signed:
        return None
    return Hit({"root": chain[-1].subject, "root_bytes": chain[-1].size})


def _flight_large(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if span.side != "client" or facts.certificate_bytes <= THRESHOLDS["initial_window_bytes"]:
        return None
    return Hit(
        {
            "certificate_bytes": facts.certificate_bytes,
            "certificates": facts.certificate_count,
            "keys": tuple(f"{c.key_type}-{c.key_size}" for c in facts.certificates),
            "initial_window_bytes": int(THRESHOLDS["initial_window_bytes"]),
        }
    )


def _verify_slow(span: HandshakeSpan, ctx: Context) -> Hit | None:
    phase = span.phase("chain_verification") or span.phase("certificate")
    if span.side != "client" or phase is None or phase.cpu_ns is None:
        return None
    if phase.cpu_ns < THRESHOLDS["chain_verify_cpu_ms"] * 1e6:
        return None
    chain = span.facts.certificates
    return Hit(
        {
            "verify_cpu_ms": ms(phase.cpu_ns),
            "phase": phase.name,
            "chain_length": len(chain),
            "keys": tuple(f"{c.key_type}-{c.key_size}" for c in chain),
        }
    )


def _client_cert_required(span: HandshakeSpan, ctx: Context) -> Hit | None:
    error, facts = span.error, span.facts
    if span.side != "client" or error is None:
        return None
    required = error.alert == "certificate_required"
    refused = (
        facts.client_certificate_requested
        and not facts.client_certificate_sent
        and error.alert in ("handshake_failure", "bad_certificate")
        and error.alert_source == "peer"
    )
    if not (required or refused):
        return None
    return Hit(
        {
            "alert": error.alert,
            "phase": error.phase,
            "protocol_version": facts.protocol_version,
            "certificate_requested": facts.client_certificate_requested,
            "certificate_sent": facts.client_certificate_sent,
        }
    )


# -- revocation and verifiers -------------------------------------------------------------


def _ocsp_not_stapled(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if (
        span.side != "client"
        or not facts.ocsp_requested
        or facts.ocsp_stapled
        or not facts.certificates_der
    ):
        return None
    leaf = cert_facts(facts.certificates_der[0])
    if not leaf.ocsp_urls or leaf.must_staple:
        return None
    return Hit({"responder": leaf.ocsp_urls[0]})


def _must_staple(span: HandshakeSpan, ctx: Context) -> Hit | None:
    facts = span.facts
    if (
        span.side != "client"
        or not facts.ocsp_requested
        or facts.ocsp_stapled
        or not facts.certificates_der
    ):
        return None
    if not cert_facts(facts.certificates_der[0]).must_staple:
        return None
    return Hit({"must_staple": True, "stapled": False})


def _revocation_checks(span: HandshakeSpan) -> list[Any]:
    return [v for v in span.verifications if v.name.startswith(("ocsp", "crl"))]


def _ocsp_slow(span: HandshakeSpan, ctx: Context) -> Hit | None:
    slow = [v for v in _revocation_checks(span) if v.duration_ns > THRESHOLDS["ocsp_slow_ms"] * 1e6]
    if not slow:
        return None
    worst = max(slow, key=lambda v: v.duration_ns)
    details = dict(worst.details)
    return Hit(
        {
            "verifier": worst.name,
            "duration_ms": ms(worst.duration_ns),
            "source": details.get("source"),
            "responder": details.get("responder") or details.get("url"),
        }
    )


def _ocsp_unavailable(span: HandshakeSpan, ctx: Context) -> Hit | None:
    failed = [
        v for v in _revocation_checks(span) if v.outcome in ("soft_failed", "timeout", "error")
    ]
    if not failed:
        return None
    first = failed[0]
    details = dict(first.details)
    return Hit(
        {
            "verifier": first.name,
            "outcome": first.outcome,
            "reason": first.reason,
            "duration_ms": ms(first.duration_ns),
            "responder": details.get("responder") or details.get("url"),
        },
        severity="error" if first.outcome != "soft_failed" and span.outcome == "error" else None,
    )


def _verifier_slow(span: HandshakeSpan, ctx: Context) -> Hit | None:
    slow = [v for v in span.verifications if v.duration_ns > THRESHOLDS["verifier_slow_ms"] * 1e6]
    if not slow:
        return None
    worst = max(slow, key=lambda v: v.duration_ns)
    return Hit(
        {
            "verifier": worst.name,
            "duration_ms": ms(worst.duration_ns),
            "share_of_handshake": round(worst.duration_ns / max(span.duration_ns, 1), 3),
            "outcome": worst.outcome,
        }
    )


def _trust_per_connection(span: HandshakeSpan, ctx: Context) -> Hit | None:
    stats = span.context_stats
    if stats is None or stats.handshake_index < 2 or stats.trust_loads_since_previous < 1:
        return None
    per_load = stats.trust_load_ns / max(stats.trust_loads, 1)
    return Hit(
        {
            "loads_for_this_connection": stats.trust_loads_since_previous,
            "load_ms": ms(per_load * stats.trust_loads_since_previous),
            "handshake_ms": ms(span.duration_ns),
            "context_id": stats.context_id,
        }
    )


def _rule(id: str, severity: Severity, title: str, hint: str, side: str, check: Any) -> Rule:
    return Rule(
        id=id, severity=severity, scope="handshake", title=title, hint=hint, side=side, check=check
    )


HANDSHAKE_RULES: Final[tuple[Rule, ...]] = (
    _rule(
        "tls.not_tls_peer",
        "error",
        "the peer answered with non-TLS bytes: {looks_like}",
        "connect to the TLS port (or use http:// for this one); check the port, the URL "
        "scheme and any proxy or load-balancer listener in between",
        "client",
        _not_tls,
    ),
    _rule(
        "tls.alpn_refused",
        "error",
        "the server refused every protocol offered in ALPN (alert no_application_protocol)",
        "client: offer a protocol the server speaks (offered: {alpn_offered}); "
        "server: add it to its ALPN list",
        "client, server",
        _alpn_refused,
    ),
    _rule(
        "tls.alpn_h2_not_selected",
        "warning",
        "h2 was offered but {alpn_selected} was selected: the silent fallback to HTTP/1.1",
        "server: enable HTTP/2 (ALPN h2) if the client should multiplex; client: expect "
        "one request per connection at a time",
        "server",
        _h2_not_selected,
    ),
    _rule(
        "tls.hello_retry",
        "warning",
        "HelloRetryRequest: the server wanted a key share for {hello_retry_group}, "
        "an extra round trip ({extra_round_trip_ms} ms)",
        "client: send a key share for {hello_retry_group} in the first ClientHello (offered: "
        "{key_share_groups_offered}); server: prefer a group the client sends a share for",
        "client, server",
        _hello_retry,
    ),
    _rule(
        "tls.tls12_round_trip",
        "warning",
        "TLS 1.2 negotiated although the client offered 1.3: a second round trip "
        "({second_round_trip_ms} ms)",
        "server: enable TLS 1.3 (one round trip; resumption without a full handshake)",
        "server",
        _tls12,
    ),
    _rule(
        "tls.server_slow_first_flight",
        "warning",
        "the server took {server_hello_ms} ms to answer the ClientHello, {excess_ms} ms more "
        "than the network round trip ({rtt_ms} ms)",
        "server: look at its CPU, its accept queue, an SNI callback or a middlebox in front "
        "of it; the client was idle ({client_cpu_ms} ms CPU)",
        "server, network",
        _slow_first_flight,
    ),
    _rule(
        "tls.client_cpu_heavy",
        "warning",
        "the client's own CPU dominated the handshake ({cpu_ms} of {duration_ms} ms)",
        "client: look at what runs in the heaviest phases ({heaviest_phases}): key shares "
        "offered, chain verification, a large trust store, a busy interpreter",
        "client",
        _client_cpu,
    ),
    _rule(
        "tls.chain_incomplete",
        "error",
        "the server did not send the intermediate certificate(s): the chain it sent ends at "
        "{last_sent}, whose issuer {missing_issuer} this client could not find (or that issuer "
        "is a CA this client does not trust)",
        "server: serve the full chain (leaf then intermediates: a fullchain file); clients "
        "that happen to hold the intermediate hide this from you",
        "server",
        _chain_incomplete,
    ),
    _rule(
        "tls.certificate_untrusted",
        "error",
        "the chain does not lead to a CA this client trusts ({verify_message})",
        "client: trust the issuing CA (cafile=, the system store); server: use a certificate "
        "from a CA the clients trust",
        "client, server",
        _untrusted,
    ),
    _rule(
        "tls.certificate_expired",
        "error",
        "the server's certificate has expired",
        "server: renew the certificate and reload it; check the renewal automation",
        "server",
        _expired,
    ),
    _rule(
        "tls.certificate_expiring",
        "info",
        "the server's certificate expires in {days_left} days ({not_after})",
        "server: renew it before it expires",
        "server",
        _expiring,
    ),
    _rule(
        "tls.certificate_hostname_mismatch",
        "error",
        "the certificate is not valid for {server_hostname} (it names {certificate_names})",
        "client: connect with a name the certificate covers; server: serve a certificate for "
        "this name (check SNI routing and the default certificate)",
        "client, server",
        _hostname,
    ),
    _rule(
        "tls.chain_sends_root",
        "info",
        "the server sends the root certificate ({root_bytes} bytes that no client uses)",
        "server: drop the root from the chain file",
        "server",
        _sends_root,
    ),
    _rule(
        "tls.certificate_flight_large",
        "warning",
        "the certificate flight is {certificate_bytes} bytes, more than the initial "
        "congestion window ({initial_window_bytes}): an extra round trip on a fresh connection",
        "server: use an ECDSA leaf, a shorter chain and no root in the chain",
        "server",
        _flight_large,
    ),
    _rule(
        "tls.chain_verify_slow",
        "warning",
        "verifying the server's chain took {verify_cpu_ms} ms of CPU",
        "client: a smaller trust store, fewer intermediates to try; server: a shorter chain "
        "with ECDSA keys (chain {chain_length}: {keys})",
        "client, server",
        _verify_slow,
    ),
    _rule(
        "tls.client_certificate_required",
        "error",
        "the server requires a client certificate and rejected the connection without one",
        "client: present a certificate the server accepts (load_cert_chain, --cert/--key)",
        "client",
        _client_cert_required,
    ),
    _rule(
        "tls.ocsp_not_stapled",
        "info",
        "a staple was requested but none came, although the certificate names an OCSP "
        "responder ({responder})",
        "server: enable OCSP stapling, so clients need not ask the responder themselves",
        "server",
        _ocsp_not_stapled,
    ),
    _rule(
        "tls.ocsp_must_staple_missing",
        "error",
        "the certificate is marked must-staple but the server sent no staple",
        "server: enable OCSP stapling (and keep a fresh response cached)",
        "server",
        _must_staple,
    ),
    _rule(
        "tls.ocsp_slow",
        "warning",
        "checking revocation took {duration_ms} ms ({verifier}, source {source})",
        "client: cache answers (refresh_ahead), use a short timeout; server: staple",
        "client, ca",
        _ocsp_slow,
    ),
    _rule(
        "tls.ocsp_unavailable",
        "warning",
        "the revocation status could not be established ({verifier}: {outcome}, {reason})",
        "CA: the responder was slow or down; client: keep the hard timeout, decide "
        "soft- or hard-fail deliberately; server: staple",
        "ca, client",
        _ocsp_unavailable,
    ),
    _rule(
        "tls.trust_store_per_connection",
        "warning",
        "a CA bundle was loaded for this connection ({load_ms} ms, against a {handshake_ms} ms "
        "handshake)",
        "client: load the trust store once and reuse the context (requests/urllib3 reload "
        "verify= paths per connection: pass an ssl_context instead)",
        "client",
        _trust_per_connection,
    ),
    _rule(
        "tls.verifier_slow",
        "warning",
        "verifier {verifier} took {duration_ms} ms ({share_of_handshake} of the handshake)",
        "client: make the verifier cheaper or cache its answers; it runs before the caller "
        "gets the connection",
        "client",
        _verifier_slow,
    ),
)
"""The handshake rules, in the order findings are reported."""
