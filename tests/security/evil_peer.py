"""One real handshake whose peers wrote control characters wherever the wire lets them.

The client asks for an SNI name with a newline and terminal escapes, both
ends offer and select an ALPN protocol with escapes, the server presents a
certificate whose subject holds a bidi override, C1 controls and line
separators, and a verifier rejects the connection quoting that subject.
Self-contained (the ``pytester`` runs of the plugin import it too).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Final

from cryptography import x509

import tlstiming
from tlstiming import HandshakeSpan, PeerInfo, SpanRecorder, VerificationFailed
from tlstiming.testing import CA, LocalTLSServer

EVIL_HOST: Final = "evil.example\nINFO FORGED ENTRY\r\x1b[2J\x7f\\x41"
EVIL_ALPN: Final = "\x1b[2J\nINFO FORGED ALPN\x07"
EVIL_CN: Final = "evil\u202e\x1b[31m\nINFO FORGED CN\x85\u2028\x9b"
FORGED: Final = "INFO FORGED"
"""What each value tries to start a line with."""


def reject_subject(peer: PeerInfo) -> None:
    """A verifier that rejects, quoting the peer's certificate subject in its reason."""
    leaf = x509.load_der_x509_certificate(peer.chain_der[0])
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    raise VerificationFailed(f"untrusted subject {cn!s}")


@contextlib.contextmanager
def evil_server() -> Iterator[tuple[int, str, SpanRecorder]]:
    """Serve one TLS connection with the evil certificate and ALPN on 127.0.0.1.

    Yields:
        The port, the PEM of the CA that issued the certificate, and the
        server context's sink.
    """
    ca = CA()
    server = tlstiming.TimedSSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", common_name=EVIL_CN).configure_cert(server)
    server.set_alpn_protocols([EVIL_ALPN])
    spans = SpanRecorder()
    server.add_sink(spans)
    with LocalTLSServer(context=server, respond="echo") as local:
        yield local.port, ca.cert_pem.bytes().decode("ascii"), spans


def evil_handshake() -> tuple[HandshakeSpan, HandshakeSpan]:
    """Run the handshake; return the client's span (rejected) and the server's (ok)."""
    client_spans = SpanRecorder()
    with evil_server() as (port, ca_pem, server_spans):
        client = tlstiming.create_default_context(cadata=ca_pem)
        client.check_hostname = False  # the name is the attack, not the test
        client.set_alpn_protocols([EVIL_ALPN, "h2"])
        client.add_verifier(reject_subject, name="subject")
        client.add_sink(client_spans)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with contextlib.suppress(tlstiming.VerifierRejected):
                client.wrap_socket(raw, server_hostname=EVIL_HOST).close()
    (client_span,) = client_spans.spans
    (server_span,) = server_spans.spans
    assert client_span.outcome == "error"
    assert server_span.facts.sni == EVIL_HOST
    assert server_span.facts.alpn_selected == EVIL_ALPN
    return client_span, server_span
