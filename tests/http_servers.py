"""HTTPS servers and a CONNECT proxy on loopback for the httpx adapter tests.

- :class:`HTTP1Server`: a threaded HTTP/1.1 keep-alive server on a stdlib
  ``ssl`` context (or plain TCP). The request path picks its behaviour
  (:data:`PATHS`).
- :class:`H2Server`: hypercorn serving a tiny ASGI app (HTTP/2 and HTTP/1.1
  by ALPN) on its own event loop in a thread.
- :class:`ConnectProxy`: a threaded forward proxy speaking CONNECT, over
  plain TCP or TLS (an HTTPS proxy); it forwards bytes both ways.

Nothing here sleeps: waits are on sockets and events, each with a guard
timeout that only matters if a test hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

GUARD: Final = 30.0
BODY: Final = b"hello from the loopback server\n"
PATHS: Final = {
    "/": "200 with BODY",
    "/stall": "read the request, never answer (until the server closes)",
    "/close": "read the request, close without answering",
    "/cut": "answer a head promising 1000 bytes, send 10, close",
}


def _head(status: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\nContent-Type: text/plain\r\n\r\n"
    ).encode("ascii")


class _Threads:
    """A listener in a thread, a thread per connection, all joined at close."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> Any:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(GUARD)
        with self._lock:
            for sock in self._live:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(GUARD)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            raw.settimeout(GUARD)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._run, args=(raw,), daemon=True)
            with self._lock:
                self.accepted += 1
                self._live.add(raw)
                self._threads.append(thread)
            thread.start()

    def _run(self, raw: socket.socket) -> None:
        sock: socket.socket = raw
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(raw, server_side=True)
            self.serve(sock)
        except (OSError, ValueError):
            pass  # the client went away, or the test closed the server
        finally:
            with self._lock:
                self._live.discard(raw)
            sock.close()

    def serve(self, sock: socket.socket) -> None:
        raise NotImplementedError


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


class HTTP1Server(_Threads):
    """HTTP/1.1 over TLS (``context``) or plain TCP (``context=None``); see :data:`PATHS`."""

    def serve(self, sock: socket.socket) -> None:
        buffer = bytearray()
        while (head := _read_head(sock, buffer)) is not None:
            path = head.split(b" ", 2)[1].decode("ascii").split("?", 1)[0]
            length = _content_length(head)
            while len(buffer) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            del buffer[:length]
            if path == "/stall":
                self._stop.wait()
                return
            if path == "/close":
                return
            if path == "/cut":
                sock.sendall(_head("200 OK", 1000) + b"x" * 10)
                return
            sock.sendall(_head("200 OK", len(BODY)) + BODY)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class ConnectProxy(_Threads):
    """A CONNECT proxy (TLS to the proxy itself when ``context`` is given).

    Attributes:
        tunnels: ``host:port`` of every CONNECT it accepted, in order.
    """

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(context)
        self.tunnels: list[str] = []

    def serve(self, sock: socket.socket) -> None:
        buffer = bytearray()
        head = _read_head(sock, buffer)
        if head is None:
            return
        method, target, _ = head.split(b" ", 2)
        if method != b"CONNECT":
            sock.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.decode("ascii").rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=GUARD)
        with self._lock:
            self._live.add(upstream)
            self.tunnels.append(f"{host}:{port}")
        try:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if buffer:
                upstream.sendall(bytes(buffer))
            _relay(sock, upstream)
        finally:
            with self._lock:
                self._live.discard(upstream)
            upstream.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Forward bytes both ways until either side closes. One thread: an SSLSocket
    must not be read and written from two threads at once."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            ready = selector.select(GUARD)
            if not ready:
                return
            for key, _ in ready:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    chunk = source.recv(65536)
                    if not chunk:
                        return
                    key.data.sendall(chunk)
                    if not (isinstance(source, ssl.SSLSocket) and source.pending()):
                        break


# -- HTTP/2: hypercorn ---------------------------------------------------------------


async def _app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = (await receive())["type"]
            await send({"type": message + ".complete"})  # lifespan.startup/shutdown.complete
            if message == "lifespan.shutdown":
                return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class H2Server:
    """hypercorn on ``127.0.0.1:0`` with TLS (ALPN h2, http/1.1), in a thread."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        from hypercorn.config import Config

        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self.config = Config()
        self.config.bind = [f"fd://{listener.detach()}"]
        self.config.certfile = str(certfile)
        self.config.keyfile = str(keyfile)
        self.config.loglevel = "WARNING"
        self.config.accesslog = None
        self.config.errorlog = "-"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> H2Server:
        self._thread.start()
        if not self._ready.wait(GUARD):
            raise RuntimeError("hypercorn did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(GUARD)
        self._loop.close()

    def _run(self) -> None:
        from hypercorn.asyncio import serve

        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await serve(_app, self.config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        self._loop.run_until_complete(main())
