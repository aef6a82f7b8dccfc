"""A minimal HTTP/1.1 keep-alive server over TLS for bench_httpx.py, run as a separate process.

Plain stdlib, imports nothing from tlstiming or httpx: the server end is the
same for every client variant. A thread per connection answers every request
head with a fixed 2-byte response as soon as the head has arrived (bodies are
not expected). Prints its port on stdout, then serves until killed.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import threading
from typing import Final

RESPONSE: Final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def serve_connection(raw: socket.socket, ctx: ssl.SSLContext) -> None:
    """Answer requests on one connection until the client closes it."""
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        with ctx.wrap_socket(raw, server_side=True) as conn:
            buffer = b""
            while chunk := conn.recv(65536):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    conn.sendall(RESPONSE)
    except OSError:
        pass
    finally:
        raw.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certchain", required=True)
    args = parser.parse_args(argv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.certchain)
    ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(raw, ctx), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
