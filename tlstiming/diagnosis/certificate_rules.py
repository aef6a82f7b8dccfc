"""Handshake rules: the certificate chain as sent, its dates and names, client certificates."""

from __future__ import annotations

import datetime
from typing import Any, Final

from tlstiming.diagnosis.finding import Severity
from tlstiming.diagnosis.rules import THRESHOLDS, Context, Hit, Rule, handshake_rule, ms
from tlstiming.diagnosis.x509 import cert_facts
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["RULES", "verify_code"]

# X.509 verify codes (OpenSSL's X509_V_ERR_*) the rules tell apart.
_UNABLE_TO_GET_ISSUER: Final = frozenset({2, 20, 21})
_NOT_YET_VALID: Final = 9
_EXPIRED: Final = 10
_SELF_SIGNED: Final = frozenset({18, 19})
_HOSTNAME_MISMATCH: Final = frozenset({62, 64})


def verify_code(span: HandshakeSpan) -> int | None:
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
    if span.side != "client" or verify_code(span) not in _UNABLE_TO_GET_ISSUER:
        return None
    chain = span.facts.certificates
    if not chain or _chain_reaches_an_issuer(span):
        return None
    leaf = cert_facts(span.facts.certificates_der[0])
    evidence: dict[str, Any] = {
        "certificates_sent": len(chain),
        "last_sent": chain[-1].subject,
        "missing_issuer": chain[-1].issuer,
        "issuer_url": leaf.ca_issuers[0] if leaf.ca_issuers else None,
    }
    checked = span.facts.chain_verification
    if checked is not None and not checked.ok:  # OpenSSL's own account (native hooks)
        evidence |= {"failed_at_depth": checked.depth, "chain_built": checked.chain_length}
    return Hit(evidence)


def _untrusted(span: HandshakeSpan, ctx: Context) -> Hit | None:
    code = verify_code(span)
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
    code = verify_code(span)
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
    if span.side != "client" or verify_code(span) not in _HOSTNAME_MISMATCH:
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
    if span.side != "client":
        return None
    checked = span.facts.chain_verification  # exact, with native hooks
    if checked is not None:
        cpu, wall, name = checked.cpu_ns, checked.duration_ns, "chain_verification"
    else:  # inferred: the certificate phase also holds parsing and waiting
        phase = span.phase("certificate")
        if phase is None:
            return None
        cpu, wall, name = phase.cpu_ns, phase.duration_ns, phase.name
    if cpu is None or cpu < THRESHOLDS["chain_verify_cpu_ms"] * 1e6:
        return None
    chain = span.facts.certificates
    return Hit(
        {
            "verify_cpu_ms": ms(cpu),
            "verify_wall_ms": ms(wall),
            "phase": name,
            "chain_length": len(chain) if checked is None else checked.chain_length,
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


RULES: Final[tuple[Rule, ...]] = (
    handshake_rule(
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
    handshake_rule(
        "tls.certificate_untrusted",
        "error",
        "the chain does not lead to a CA this client trusts ({verify_message})",
        "client: trust the issuing CA (cafile=, the system store); server: use a certificate "
        "from a CA the clients trust",
        "client, server",
        _untrusted,
    ),
    handshake_rule(
        "tls.certificate_expired",
        "error",
        "the server's certificate has expired",
        "server: renew the certificate and reload it; check the renewal automation",
        "server",
        _expired,
    ),
    handshake_rule(
        "tls.certificate_expiring",
        "info",
        "the server's certificate expires in {days_left} days ({not_after})",
        "server: renew it before it expires",
        "server",
        _expiring,
    ),
    handshake_rule(
        "tls.certificate_hostname_mismatch",
        "error",
        "the certificate is not valid for {server_hostname} (it names {certificate_names})",
        "client: connect with a name the certificate covers; server: serve a certificate for "
        "this name (check SNI routing and the default certificate)",
        "client, server",
        _hostname,
    ),
    handshake_rule(
        "tls.chain_sends_root",
        "info",
        "the server sends the root certificate ({root_bytes} bytes that no client uses)",
        "server: drop the root from the chain file",
        "server",
        _sends_root,
    ),
    handshake_rule(
        "tls.certificate_flight_large",
        "warning",
        "the certificate flight is {certificate_bytes} bytes, more than the initial "
        "congestion window ({initial_window_bytes}): an extra round trip on a fresh connection",
        "server: use an ECDSA leaf, a shorter chain and no root in the chain",
        "server",
        _flight_large,
    ),
    handshake_rule(
        "tls.chain_verify_slow",
        "warning",
        "verifying the server's chain took {verify_cpu_ms} ms of CPU",
        "client: a smaller trust store, fewer intermediates to try; server: a shorter chain "
        "with ECDSA keys (chain {chain_length}: {keys})",
        "client, server",
        _verify_slow,
    ),
    handshake_rule(
        "tls.client_certificate_required",
        "error",
        "the server requires a client certificate and rejected the connection without one",
        "client: present a certificate the server accepts (load_cert_chain, --cert/--key)",
        "client",
        _client_cert_required,
    ),
)
"""Rules over certificates, in the order findings are reported."""
