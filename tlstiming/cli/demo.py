"""Embedded loopback TLS servers for ``tlstiming demo``: no internet needed."""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tlstiming.testing.pki import LocalPKI

__all__ = ["DemoPKI", "LoopbackServer", "demo_pki"]


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
