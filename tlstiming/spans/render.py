"""Human-readable renderings of spans (CLI, log messages, assertion failures).

Every string a span holds is escaped (:func:`tlstiming.spans.escape.escape`):
the SNI name, ALPN protocols, error messages and verifier reasons can be
written by the peer.
"""

from __future__ import annotations

from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan

__all__ = ["one_line", "waterfall"]

_BAR_WIDTH = 32


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def one_line(span: HandshakeSpan) -> str:
    """``TLS 1.3 localhost:443 1.234 ms [client_hello 0.1, server_hello 0.5, ...] alpn=h2``."""
    facts = span.facts
    version = f"TLS {facts.protocol_version}" if facts.protocol_version else "TLS ?"
    host = escape(span.server_hostname or facts.sni or (span.peer[0] if span.peer else "?"))
    port = f":{span.peer[1]}" if span.peer else ""
    phases = ", ".join(f"{escape(p.name)} {p.duration_ns / 1e6:.1f}" for p in span.phases)
    parts = [f"{escape(version)} {host}{port} {span.duration_ns / 1e6:.1f} ms [{phases}]"]
    if facts.alpn_offered:
        offered = ",".join(map(escape, facts.alpn_offered))
        parts.append(f"alpn={escape(facts.alpn_selected or 'none')} (offered {offered})")
    if facts.resumed:
        parts.append("resumed")
    if facts.hello_retry:
        parts.append("hrr")
    if facts.ocsp_requested or facts.ocsp_stapled:
        parts.append("ocsp=stapled" if facts.ocsp_stapled else "ocsp=not stapled")
    if span.error is not None:
        parts.append(f"error={escape(span.error.type)} phase={escape(str(span.error.phase))}")
        if span.error.alert:
            parts.append(f"alert={escape(span.error.alert)}")
    return " ".join(parts)


def waterfall(span: HandshakeSpan) -> str:
    """A multi-line view: one row per phase with wall time, CPU time and a bar."""
    total = max(span.duration_ns, 1)
    lines = [one_line(span)]
    facts = span.facts
    lines.append(
        f"  cipher={escape(facts.cipher or '-')} group={escape(facts.group or '-')} "
        f"round_trips={span.round_trips} certificates={facts.certificate_count} "
        f"({facts.certificate_bytes} bytes)"
    )
    lines.append(f"  {'phase':<26}{'wall ms':>9}{'cpu ms':>9}")
    for phase in span.phases:
        offset = (phase.start_ns - span.start_ns) * _BAR_WIDTH // total
        width = max(1, phase.duration_ns * _BAR_WIDTH // total)
        bar = " " * offset + "#" * width
        times = f"{_ms(phase.duration_ns):>9}{_ms(phase.cpu_ns):>9}"
        lines.append(f"  {escape(phase.name):<26}{times}  |{bar:<{_BAR_WIDTH}}|")
    if span.error is not None:
        lines.append(f"  error: {escape(span.error.type)}: {escape(span.error.message)}")
    return "\n".join(lines)
