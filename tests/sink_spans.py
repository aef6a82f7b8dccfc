"""Spans for the sink tests: real loopback handshakes, and a stand-in request span.

:func:`real_spans` runs a handful of real handshakes once (ok, resumed,
failed on a wrong host name, and the server's view of one). :class:`FakeRequestSpan`
stands in for ``tlstiming.spans.request.RequestSpan`` (issue 3, not merged yet): it
implements what the sinks read (``kind``, ``span_id``, ``outcome``,
``duration_ns``, ``to_dict()``) with the keys issue 3 specifies, plus a URL
with credentials and a query that no sink may let through.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from servers import PKI, LoopbackServer, connect, read_exactly, server_context

import tlstiming
from tlstiming import HandshakeSpan

SECRET_URL: Final = "https://user:pass@api.example.test:8443/v1/items?token=s3cr3t&x=1#frag"
SECRETS: Final = ("user:pass", "pass@", "s3cr3t", "token=", "#frag", "PRIVATE KEY")
_BLOBS: Final = re.compile(r"[0-9A-Fa-f]{65,}|[A-Za-z0-9+/=]{90,}")


@dataclass(frozen=True)
class RealSpans:
    """Spans from real handshakes against a loopback server."""

    ok: HandshakeSpan
    resumed: HandshakeSpan
    failed: HandshakeSpan
    server: HandshakeSpan
    port: int


def real_spans(pki: PKI) -> RealSpans:
    """Run the handshakes (TLS 1.3, ALPN offered) and return their spans."""
    server_recorder = tlstiming.SpanRecorder()
    server_ctx = server_context(pki.leaf, factory=tlstiming.TimedSSLContext, alpn=["h2"])
    assert isinstance(server_ctx, tlstiming.TimedSSLContext)
    server_ctx.add_sink(server_recorder)
    recorder = tlstiming.SpanRecorder()
    client = tlstiming.create_default_context(cadata=pki.ca_pem)
    client.set_alpn_protocols(["h2", "http/1.1"])
    client.add_sink(recorder)
    with LoopbackServer(server_ctx) as server:
        with contextlib.closing(connect(client, server.address)) as tls:
            read_exactly(tls, 5)  # the server's greeting brings the session ticket
            session = tls.session
        with contextlib.closing(connect(client, server.address, session=session)) as tls:
            assert tls.session_reused
        try:
            connect(client, server.address, "wrong.example.test").close()
        except ssl.SSLCertVerificationError:
            pass
        else:  # pragma: no cover
            raise AssertionError("the wrong host name was accepted")
        for _ in range(3):
            server.next_result()
    ok, resumed, failed = recorder.spans
    assert (ok.outcome, resumed.outcome, failed.outcome) == ("ok", "ok", "error")
    server_span = next(s for s in server_recorder.spans if s.outcome == "ok")
    return RealSpans(ok=ok, resumed=resumed, failed=failed, server=server_span, port=server.port)


class FakeRequestSpan:
    """A stand-in for issue 3's ``RequestSpan`` (marked: replace with the real one when it lands).

    Its ``to_dict()`` is deliberately *not* redacted, so the tests show that
    the sinks strip URL credentials and queries themselves.
    """

    kind: Final = "http.request"

    def __init__(
        self,
        handshake: HandshakeSpan | None,
        *,
        outcome: str = "ok",
        reused: bool = False,
        nest: bool = True,
    ) -> None:
        self.handshake = handshake
        self.outcome = outcome
        self.span_id = "00000000000000aa"
        self.duration_ns = 9_000_000
        self._reused = reused
        self._nest = nest

    def to_dict(self) -> dict[str, Any]:
        """The keys of ``spans.request_export`` that the sinks read, and the phase names."""
        start = 1_700_000_000_000_000_000
        phases = [
            ("send_request", 6_000_000, 500_000),
            ("wait_first_byte", 6_500_000, 1_500_000),
            ("receive_body", 8_000_000, 1_000_000),
        ]
        if not self._reused:
            phases[:0] = [
                ("pool_wait", 0, 100_000),
                ("dns", 100_000, 900_000),
                ("connect", 1_000_000, 1_000_000),
                ("tls", 2_000_000, 4_000_000),
            ]
        handshake = None
        if self.handshake is not None and self._nest and not self._reused:
            handshake = self.handshake.to_dict()
        if handshake is not None:  # it happened inside the request's tls phase
            handshake["start_time_unix_nano"] = start + 2_000_000
        error = self.outcome == "error"
        return {
            "tlstiming.schema": "1",
            "tlstiming.kind": self.kind,
            "span.id": self.span_id,
            "http.request.method": "GET",
            "url.full": SECRET_URL,
            "url.scheme": "https",
            "server.address": "api.example.test",
            "server.port": 8443,
            "network.peer.address": "127.0.0.1",
            "network.peer.port": 8443,
            "network.protocol.version": None if error else "1.1",
            "http.response.status_code": None if error else 200,
            "start_time_unix_nano": start,
            "duration_ns": self.duration_ns,
            "outcome": self.outcome,
            "error.type": "httpx.ReadTimeout" if error else None,
            "tlstiming.connection.reused": self._reused,
            "tlstiming.phases": [
                {"name": n, "start_ns": s, "duration_ns": d, "cpu_ns": None} for n, s, d in phases
            ],
            "tlstiming.failed_phase": "wait_first_byte" if error else None,
            "tlstiming.handshake": handshake,
            "tlstiming.proxy_handshake": None,
        }


def assert_no_secrets(outputs: Iterable[Any]) -> None:
    """No credentials, query, fragment, key or ticket-sized blob in what a sink produced."""
    for output in outputs:
        text = output if isinstance(output, str) else json.dumps(output, default=str)
        for secret in SECRETS:
            assert secret not in text, (secret, text[:500])
        assert not _BLOBS.search(text), _BLOBS.search(text)
