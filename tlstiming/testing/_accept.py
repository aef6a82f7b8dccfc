"""The threads behind :class:`~tlstiming.testing.LocalTLSServer`.

A listener on loopback, an accept loop that a socket pair wakes, one thread
per connection; :meth:`Acceptor.close` cuts every connection and joins
every thread.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

GUARD: Final = 30.0
"""Seconds a connection may sit idle, or a thread take to stop, before the server gives up."""

T = TypeVar("T")


class Acceptor(Generic[T]):
    """Accept on ``host``, port 0; run ``handle(raw)`` per connection, on its own thread.

    Once the connection's socket is closed, ``finished`` receives what
    ``handle`` returned (``handle`` should not raise: nothing is reported then).

    Args:
        host: ``127.0.0.1`` or ``::1``.
        handle: converses on an accepted socket.
        finished: receives each conversation's outcome, after its socket is closed.
        name: the accept thread's name (connection threads add ``-conn``).
    """

    def __init__(
        self,
        host: str,
        handle: Callable[[socket.socket], T],
        finished: Callable[[T], None],
        *,
        name: str,
    ) -> None:
        self._listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            self._listener.bind((host, 0))
            self._listener.listen(1024)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.closing = threading.Event()
        """Set by :meth:`close`: waits in connection threads should end."""
        self.accepted = 0
        self._handle, self._finished, self._name = handle, finished, name
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._live: dict[threading.Thread, socket.socket] = {}
        self._thread = threading.Thread(target=self._loop, name=name)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def wrap(self, raw: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
        """``raw`` wrapped server side (no handshake yet), for :meth:`close` to cut.

        Raises:
            ConnectionAbortedError: the server is closing.
        """
        # Under the lock: close() must never see the moment the SSLSocket has taken
        # the descriptor from ``raw`` but is not tracked yet (it could not cut it).
        with self._lock:
            if self.closing.is_set():
                raise ConnectionAbortedError("the server is closing")
            tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            self._live[threading.current_thread()] = tls
        return tls

    def current(self) -> socket.socket:
        """The socket of the calling connection thread (``raw``, or what :meth:`wrap` made)."""
        with self._lock:
            return self._live[threading.current_thread()]

    def close(self) -> None:
        """Stop accepting, cut every connection, join every thread; idempotent.

        Raises:
            RuntimeError: a thread is still running after :data:`GUARD` seconds.
        """
        self.closing.set()
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._wake_w.send(b"x")
            self._thread.join(GUARD)
        with self._lock:
            for sock in self._live.values():
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            workers = list(self._live)
        for worker in workers:
            worker.join(GUARD)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._thread.is_alive() or any(w.is_alive() for w in workers):
            raise RuntimeError(f"{self._name}: threads still running after {GUARD} s")

    def _loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.closing.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener:
                        self._accept()

    def _accept(self) -> None:
        try:
            raw, _ = self._listener.accept()
        except OSError:  # e.g. the client gave up already
            return
        raw.setblocking(True)
        raw.settimeout(GUARD)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stalls
        thread = threading.Thread(target=self._run, args=(raw,), name=f"{self._name}-conn")
        with self._lock:
            if self.closing.is_set():
                raw.close()
                return
            self.accepted += 1
            self._live[thread] = raw
        thread.start()

    def _run(self, raw: socket.socket) -> None:
        try:
            outcome = self._handle(raw)
            self.current().close()
            self._finished(outcome)
        finally:  # last: close() joins the threads it still finds here
            with self._lock:
                sock = self._live.pop(threading.current_thread())
            sock.close()
