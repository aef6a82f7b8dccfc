"""A plain-stdlib TLS server for the benchmarks, run as a separate process.

It imports nothing from tlstiming: the server end is identical for every
variant the client side compares. It prints its port on stdout, then serves
until killed. Two modes:

``handshake``
    One connection at a time in the accept loop: handshake, send ``b"k"``,
    close. The client reads the ``k`` outside its timed region, so the server
    has finished with one connection before the client starts the next.
``data``
    A thread per connection, serving commands until the client goes away:
    ``b"B" + n`` (8 bytes, big endian) sends ``n`` bytes as fast as it can;
    ``b"E" + n`` echoes ``n`` messages of :data:`ECHO_SIZE` bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import sys
import threading
from typing import Final

ECHO_SIZE: Final = 64
CHUNK: Final = 1 << 20
_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(certchain: str, max_tls: str) -> ssl.SSLContext:
    """A server context with the benchmark certificate, capped at ``max_tls``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certchain)
    ctx.maximum_version = _VERSIONS[max_tls]
    return ctx


def recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    """Read exactly ``n`` bytes, or fewer if the peer closed."""
    parts = []
    while n:
        part = sock.recv(n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def serve_handshakes(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    """Handshake, say ``k``, close; one connection at a time."""
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:  # the listener was shut down
            return
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with ctx.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"k")
        except OSError:
            raw.close()


def serve_data_connection(raw: socket.socket, ctx: ssl.SSLContext) -> None:
    """Answer bulk and echo commands on one connection until it closes."""
    payload = memoryview(bytes(CHUNK))
    try:
        with ctx.wrap_socket(raw, server_side=True) as conn:
            while True:
                command = recv_exactly(conn, 9)
                if len(command) < 9:
                    return
                n = int.from_bytes(command[1:], "big")
                if command[:1] == b"B":
                    while n > 0:
                        conn.sendall(payload[: min(n, CHUNK)])
                        n -= CHUNK
                else:
                    for _ in range(n):
                        conn.sendall(recv_exactly(conn, ECHO_SIZE))
    except OSError:
        raw.close()


def serve_data(listener: socket.socket, ctx: ssl.SSLContext) -> None:
    """A thread per connection (the benchmark keeps one connection per variant open)."""
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:  # the listener was shut down
            return
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_data_connection, args=(raw, ctx), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["handshake", "data"], required=True)
    parser.add_argument("--certchain", required=True, help="PEM: key and certificate chain")
    parser.add_argument("--max-tls", choices=sorted(_VERSIONS), default="1.3")
    args = parser.parse_args(argv)
    ctx = server_context(args.certchain, args.max_tls)
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(listener.getsockname()[1], flush=True)
    serve = serve_handshakes if args.mode == "handshake" else serve_data
    with contextlib.suppress(KeyboardInterrupt):
        serve(listener, ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
