"""The rules over a request span (DNS, connect, pool, first byte) and over groups of spans."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from tlstiming.diagnosis.finding import Severity
from tlstiming.diagnosis.rules import THRESHOLDS, Context, Hit, Rule, Scope, endpoint, ms
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["COLLECTION_RULES", "REQUEST_RULES", "endpoint_of", "rtt_of"]


def _phase_ns(span: Any, name: str) -> int:
    return sum(p.duration_ns for p in span.phases if p.name == name)


def rtt_of(span: Any) -> int | None:
    """The TCP connect time of a request span's connection: its round-trip estimate."""
    connection = getattr(span, "connection", None)
    attempts = (
        [] if connection is None else [a for a in connection.attempts if a.error_type is None]
    )
    return attempts[-1].duration_ns if attempts else None


def _dns(span: Any, ctx: Context) -> Hit | None:
    dns = _phase_ns(span, "dns")
    if dns < THRESHOLDS["dns_slow_ms"] * 1e6:
        return None
    resolved = span.connection.resolved if span.connection else ()
    return Hit({"dns_ms": ms(dns), "host": span.server_address, "resolved": resolved})


def _connect(span: Any, ctx: Context) -> Hit | None:
    connect = _phase_ns(span, "connect")
    if connect < THRESHOLDS["connect_slow_ms"] * 1e6:
        return None
    attempts = span.connection.attempts if span.connection else ()
    return Hit({"connect_ms": ms(connect), "attempts": len(attempts)})


def _retry(span: Any, ctx: Context) -> Hit | None:
    attempts: Sequence[Any] = span.connection.attempts if span.connection else ()
    failed = [a for a in attempts if a.error_type is not None]
    if not failed or len(failed) == len(attempts):
        return None
    return Hit(
        {
            "failed": tuple(f"{endpoint(a.address, a.port)} {a.error_type}" for a in failed),
            "lost_ms": ms(sum(a.duration_ns for a in failed)),
            "connected_to": endpoint(attempts[-1].address, attempts[-1].port),
        }
    )


def _pool(span: Any, ctx: Context) -> Hit | None:
    wait = _phase_ns(span, "pool_wait")
    if wait < THRESHOLDS["pool_wait_ms"] * 1e6:
        return None
    return Hit({"pool_wait_ms": ms(wait), "duration_ms": ms(span.duration_ns)})


def _first_byte(span: Any, ctx: Context) -> Hit | None:
    wait = _phase_ns(span, "wait_first_byte")
    if wait < THRESHOLDS["first_byte_slow_ms"] * 1e6:
        return None
    return Hit({"first_byte_ms": ms(wait), "status_code": span.status_code})


_CERTIFICATE_REFUSALS: Final = frozenset({400, 403, 495, 496})  # nginx: 495/496 shown as 400


def _client_cert_http(span: Any, ctx: Context) -> Hit | None:
    """A server that asked for a certificate and refused the request at HTTP (nginx's way)."""
    handshake = span.handshake
    if handshake is None or span.status_code not in _CERTIFICATE_REFUSALS:
        return None
    facts = handshake.facts
    if not facts.client_certificate_requested or facts.client_certificate_sent:
        return None
    return Hit(
        {
            "status_code": span.status_code,
            "protocol_version": facts.protocol_version,
            "certificate_requested": True,
            "certificate_sent": False,
        }
    )


def _rule(
    id: str,
    severity: Severity,
    title: str,
    hint: str,
    side: str,
    check: Any,
    scope: Scope = "request",
) -> Rule:
    return Rule(
        id=id, severity=severity, scope=scope, title=title, hint=hint, side=side, check=check
    )


REQUEST_RULES: Final[tuple[Rule, ...]] = (
    _rule(
        "http.dns_slow",
        "warning",
        "resolving {host} took {dns_ms} ms",
        "client: cache resolutions (a local resolver, a longer-lived client); network: check "
        "the resolver and the search domains",
        "client, network",
        _dns,
    ),
    _rule(
        "http.connect_slow",
        "warning",
        "the TCP connect took {connect_ms} ms",
        "network: a far server, SYN loss (the first retransmit waits 1 s) or a full accept "
        "queue on the server; client: keep connections alive",
        "network, server",
        _connect,
    ),
    _rule(
        "http.connect_retry",
        "warning",
        "an address failed before one worked ({failed}), {lost_ms} ms lost",
        "server/DNS: remove or fix the address that fails (often IPv6 published but not "
        "served); client: Happy Eyeballs or prefer the family that works",
        "server, network",
        _retry,
    ),
    _rule(
        "http.pool_wait",
        "warning",
        "the request waited {pool_wait_ms} ms for a free connection in the pool",
        "client: raise the pool's connection limit or send fewer requests at once",
        "client",
        _pool,
    ),
    _rule(
        "tls.client_certificate_required",
        "error",
        "the server asked for a client certificate and refused the request without one "
        "(HTTP {status_code})",
        "client: present a certificate the server accepts (load_cert_chain, --cert/--key)",
        "client",
        _client_cert_http,
    ),
    _rule(
        "http.first_byte_slow",
        "warning",
        "the server took {first_byte_ms} ms to send the first byte of its response",
        "server: the application's own time (handler, database, upstreams); TLS is not the cause",
        "server",
        _first_byte,
    ),
)


# -- collections ------------------------------------------------------------------------


def endpoint_of(span: HandshakeSpan) -> tuple[str, int | None]:
    """Host (the name asked for, else the peer address) and port of a handshake span."""
    host = span.server_hostname or span.facts.sni or (span.peer[0] if span.peer else "?")
    return host, (span.peer[1] if span.peer else None)


def _by_endpoint(spans: Sequence[HandshakeSpan]) -> list[list[HandshakeSpan]]:
    groups: dict[tuple[str, int | None], list[HandshakeSpan]] = defaultdict(list)
    for span in spans:
        if span.side == "client" and span.outcome == "ok":
            groups[endpoint_of(span)].append(span)
    return [g for g in groups.values() if len(g) >= 2]


def _no_resumption(spans: Sequence[HandshakeSpan], ctx: Context) -> list[Hit]:
    hits = []
    for group in _by_endpoint(spans):
        if any(s.facts.resumed for s in group):
            continue
        offered = sum(1 for s in group[1:] if s.facts.resumption_offered)
        host, port = endpoint_of(group[0])
        evidence = {"endpoint": endpoint(host, port), "connections": len(group), "offered": offered}
        if offered:
            hits.append(
                Hit(
                    evidence,
                    title="the server refused to resume sessions ({offered} of {connections} "
                    "connections to {endpoint} offered one)",
                    hint="server: enable session tickets or a session cache (and share the "
                    "ticket key across instances behind one name)",
                )
            )
        else:
            hits.append(Hit(evidence))
    return hits


def _context_per_connection(spans: Sequence[HandshakeSpan], ctx: Context) -> list[Hit]:
    hits = []
    for group in _by_endpoint(spans):
        stats = [s.context_stats for s in group]
        if any(st is None or st.handshake_index != 1 for st in stats):
            continue
        contexts = {st.context_id for st in stats if st is not None}
        if len(contexts) < len(group):
            continue
        setup = [st.build_ns + st.trust_load_ns for st in stats if st is not None]
        host, port = endpoint_of(group[0])
        hits.append(
            Hit(
                {
                    "endpoint": endpoint(host, port),
                    "connections": len(group),
                    "contexts": len(contexts),
                    "setup_ms_each": ms(sum(setup) / len(setup)),
                    "handshake_ms_each": ms(sum(s.duration_ns for s in group) / len(group)),
                },
                title="a new SSL context (and CA bundle) for each of {connections} connections "
                "to {endpoint}: {setup_ms_each} ms each, against {handshake_ms_each} ms handshakes",
            )
        )
    return hits


COLLECTION_RULES: Final[tuple[Rule, ...]] = (
    _rule(
        "tls.no_resumption",
        "warning",
        "{connections} connections to {endpoint}, none resumed: the client offered no session",
        "client: reuse one SSLContext and pass session= (or keep a pooled client) so that "
        "later connections resume",
        "client, server",
        _no_resumption,
        scope="collection",
    ),
    _rule(
        "tls.trust_store_per_connection",
        "warning",
        "a new SSL context for each connection to {endpoint}",
        "client: build the context once and reuse it (requests/urllib3: pass one ssl_context; "
        "httpx: one Client)",
        "client",
        _context_per_connection,
        scope="collection",
    ),
)
