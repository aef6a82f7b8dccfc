"""Embedded loopback TLS servers for ``tlstiming demo``: no internet needed."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tlstiming._recording.context import create_default_context
from tlstiming.recorder import SpanRecorder
from tlstiming.spans.escape import escape
from tlstiming.spans.handshake import HandshakeSpan
from tlstiming.spans.render import waterfall
from tlstiming.testing.pki import LocalPKI

__all__ = ["DemoPKI", "LoopbackServer", "demo_pki", "run"]

_Tweak = Callable[[ssl.SSLContext], None]


class DemoPKI:
    """A throwaway root and intermediate CA and a ``localhost`` certificate, in ``directory``.

    The certificates are :class:`tlstiming.testing.LocalPKI`'s, which pass the
    strict X.509 checks that Python 3.13's ``create_default_context`` turns on.
    """

    def __init__(self, directory: str) -> None:
        pki = LocalPKI(directory)
        self.ca_file = pki.ca_file
        self._server = pki.issue(("localhost", "127.0.0.1"))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the ``localhost`` certificate and its intermediate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._server.cert_file, self._server.key_file)
        return context


@contextmanager
def demo_pki() -> Iterator[DemoPKI]:
    """Yield a :class:`DemoPKI` whose files are deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="tlstiming-demo-") as directory:
        yield DemoPKI(directory)


class LoopbackServer:
    """A TLS server on 127.0.0.1 in a thread: handshake, send a greeting, wait for EOF, close."""

    def __init__(self, context: ssl.SSLContext, greeting: bytes = b"ok") -> None:
        self._context = context
        self._greeting = greeting
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tlstiming-demo", daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            with raw:
                _answer(self._context, raw, self._greeting)


def _answer(context: ssl.SSLContext, raw: socket.socket, greeting: bytes) -> None:
    raw.settimeout(5)
    try:
        with context.wrap_socket(raw, server_side=True) as conn:
            conn.sendall(greeting)
            while conn.recv(1024):
                pass
    except (OSError, ssl.SSLError):
        return


def _show(span: HandshakeSpan | None, as_json: bool, out: TextIO) -> None:
    if span is None:
        out.write("(no span recorded)\n")
    elif as_json:
        out.write(json.dumps(span.to_dict()) + "\n")
    else:
        out.write(waterfall(span) + "\n\n")


def _error_text(exc: BaseException) -> str:
    """``Type: message``, escaped: the message can quote the peer (names, verifier reasons)."""
    return escape(f"{type(exc).__name__}: {exc}")


def _connect(
    context: ssl.SSLContext, port: int, hostname: str, session: ssl.SSLSession | None = None
) -> ssl.SSLSession | None:
    """Handshake, read the greeting (and with it any TLS 1.3 ticket), return the session."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=hostname, session=session) as conn:
            conn.recv(16)
            return conn.session


def run(*, as_json: bool, out: TextIO) -> int:
    """The demo: handshakes of different kinds against embedded loopback servers."""

    def cap_tls12(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def only_p384(ctx: ssl.SSLContext) -> None:
        ctx.set_ecdh_curve("secp384r1")

    def only_http11(ctx: ssl.SSLContext) -> None:
        ctx.set_alpn_protocols(["http/1.1"])

    scenarios: list[tuple[str, _Tweak | None, str, bool]] = [
        ("TLS 1.3, full handshake", None, "localhost", False),
        ("TLS 1.3, resumed with the ticket of the one above", None, "localhost", True),
        ("TLS 1.2: a second round trip", cap_tls12, "localhost", False),
        ("HelloRetryRequest: the server wants secp384r1", only_p384, "localhost", False),
        ("ALPN: h2 offered, the server falls back to http/1.1", only_http11, "localhost", False),
        ("Failing: certificate not valid for the name asked", None, "wrong.example", False),
    ]
    recorder = SpanRecorder()
    with demo_pki() as pki:
        client = create_default_context(cafile=pki.ca_file)
        client.set_alpn_protocols(["h2", "http/1.1"])
        client.add_sink(recorder)
        session: ssl.SSLSession | None = None
        shared = pki.server_context()  # one context, so its session tickets stay valid
        for title, tweak, hostname, resume in scenarios:
            server_context = shared if tweak is None else pki.server_context()
            if tweak is not None:
                tweak(server_context)
            if not as_json:
                out.write(f"== {title}\n")
            with LoopbackServer(server_context) as server:
                try:
                    session = _connect(client, server.port, hostname, session if resume else None)
                except (OSError, ssl.SSLError) as exc:
                    if not as_json:
                        out.write(f"   caller got: {_error_text(exc)}\n")
            _show(recorder.spans[-1] if recorder.spans else None, as_json, out)
    return 0
