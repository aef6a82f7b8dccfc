"""Handshake rules: the peer, ALPN, round trips, who spent the time."""

from __future__ import annotations

from typing import Final

from tlstiming.diagnosis.rules import THRESHOLDS, Context, Hit, Rule, handshake_rule, ms
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["RULES"]

_BANNERS: Final = {
    ord("H"): "plain HTTP (an 'HTTP/' response)",
    ord("S"): "an SSH server ('SSH-' banner)",
    ord("2"): "an SMTP or FTP server ('220' banner)",
    ord("+"): "a POP3 server ('+OK' banner)",
    ord("*"): "an IMAP server ('* OK' banner)",
    ord("<"): "HTML or XML",
    ord("{"): "JSON",
    ord("-"): "a Redis server ('-ERR' reply)",
}


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


RULES: Final[tuple[Rule, ...]] = (
    handshake_rule(
        "tls.not_tls_peer",
        "error",
        "the peer answered with non-TLS bytes: {looks_like}",
        "connect to the TLS port (or use http:// for this one); check the port, the URL "
        "scheme and any proxy or load-balancer listener in between",
        "client",
        _not_tls,
    ),
    handshake_rule(
        "tls.alpn_refused",
        "error",
        "the server refused every protocol offered in ALPN (alert no_application_protocol)",
        "client: offer a protocol the server speaks (offered: {alpn_offered}); "
        "server: add it to its ALPN list",
        "client, server",
        _alpn_refused,
    ),
    handshake_rule(
        "tls.alpn_h2_not_selected",
        "warning",
        "h2 was offered but {alpn_selected} was selected: the silent fallback to HTTP/1.1",
        "server: enable HTTP/2 (ALPN h2) if the client should multiplex; client: expect "
        "one request per connection at a time",
        "server",
        _h2_not_selected,
    ),
    handshake_rule(
        "tls.hello_retry",
        "warning",
        "HelloRetryRequest: the server wanted a key share for {hello_retry_group}, "
        "an extra round trip ({extra_round_trip_ms} ms)",
        "client: send a key share for {hello_retry_group} in the first ClientHello (offered: "
        "{key_share_groups_offered}); server: prefer a group the client sends a share for",
        "client, server",
        _hello_retry,
    ),
    handshake_rule(
        "tls.tls12_round_trip",
        "warning",
        "TLS 1.2 negotiated although the client offered 1.3: a second round trip "
        "({second_round_trip_ms} ms)",
        "server: enable TLS 1.3 (one round trip; resumption without a full handshake)",
        "server",
        _tls12,
    ),
    handshake_rule(
        "tls.server_slow_first_flight",
        "warning",
        "the server took {server_hello_ms} ms to answer the ClientHello, {excess_ms} ms more "
        "than the network round trip ({rtt_ms} ms)",
        "server: look at its CPU, its accept queue, an SNI callback or a middlebox in front "
        "of it; the client was idle ({client_cpu_ms} ms CPU)",
        "server, network",
        _slow_first_flight,
    ),
    handshake_rule(
        "tls.client_cpu_heavy",
        "warning",
        "the client's own CPU dominated the handshake ({cpu_ms} of {duration_ms} ms)",
        "client: look at what runs in the heaviest phases ({heaviest_phases}): key shares "
        "offered, chain verification, a large trust store, a busy interpreter",
        "client",
        _client_cpu,
    ),
)
"""Rules over the connection and its round trips, in the order findings are reported."""
