"""What :class:`~tlstiming.testing.LocalTLSServer` does on a connection, as tables.

``BEFORE_TLS``: misbehaviours on the raw socket (no handshake at all).
``AFTER_HANDSHAKE``: what the server says over TLS; each returns the bytes
it read that a test may want to see (``greet``), else ``b""``.
Also strict ALPN, which answers in front of OpenSSL.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from tlstiming._wire import messages as _wire
from tlstiming.errors import ParseError

_OK: Final = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
_HTTP_400: Final = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_ALERT_NO_APPLICATION_PROTOCOL: Final = bytes([21, 3, 3, 0, 2, 2, 120])


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerResult:
    """What happened to one connection, server side (:attr:`LocalTLSServer.results`).

    Attributes:
        peer: the client's address.
        error: the exception that ended the connection, or ``None``.
        version: the TLS version negotiated (``None`` without a handshake).
        alpn: the protocol selected.
        client_cert: whether the client presented a certificate.
        received: what the client sent, with ``respond="greet"``.
    """

    peer: tuple[str, int]
    error: Exception | None = None
    version: str | None = None
    alpn: str | None = None
    client_cert: bool = False
    received: bytes = b""


def peer_of(sock: socket.socket) -> tuple[str, int]:
    """The client's ``(address, port)``, or ``("", 0)`` if it left already."""
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return ("", 0)
    return host, port


def _silent(sock: socket.socket, closing: threading.Event) -> None:
    """Never answer (until the server closes)."""
    closing.wait()


def _not_tls(sock: socket.socket, closing: threading.Event) -> None:
    """Read the ClientHello, answer an HTTP 400, read until EOF."""
    sock.recv(65536)
    sock.sendall(_HTTP_400)
    drain(sock)


def _reset(sock: socket.socket, closing: threading.Event) -> None:
    """Read the ClientHello, then have the close reset the connection (SO_LINGER 0)."""
    sock.recv(65536)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


BEFORE_TLS: Final[dict[str, Callable[[socket.socket, threading.Event], None]]] = {
    "silent": _silent,
    "not_tls": _not_tls,
    "reset": _reset,
}


def drain(sock: socket.socket) -> bytes:
    """Everything ``sock`` receives until EOF."""
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def _greet(sock: socket.socket, greeting: bytes) -> bytes:
    """Write ``greeting``, read until EOF."""
    sock.sendall(greeting)
    return drain(sock)


def _echo(sock: socket.socket, greeting: bytes) -> bytes:
    while chunk := sock.recv(65536):
        sock.sendall(chunk)
    return b""


_H2_PREFACE: Final = b"PRI * HTTP/2.0"  # the request line of RFC 9113's connection preface
_H2_SETTINGS: Final = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame
# HEADERS on stream 1, END_STREAM | END_HEADERS, one field: ":status 200" (static index 8).
_H2_OK: Final = b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x88"


def _http(sock: socket.socket, greeting: bytes) -> bytes:
    """Answer ``200 ok`` to each HTTP/1.1 request until EOF or ``Connection: close``.

    A client that opens with HTTP/2's connection preface gets a minimal
    HTTP/2 answer: SETTINGS, then ``:status 200`` on stream 1.
    """
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if head == _H2_PREFACE:
            sock.sendall(_H2_SETTINGS + _H2_OK)
            return drain(sock)
        lines = head.lower().split(b"\r\n")
        length = next((int(h[15:]) for h in lines if h.startswith(b"content-length:")), 0)
        if len(buffer) < length:
            buffer += _read(sock, length - len(buffer))
        buffer = buffer[length:]
        close = b"connection: close" in lines
        sock.sendall(_OK + (b"Connection: close\r\n" if close else b"") + b"\r\nok\n")
        if close:
            return b""


AFTER_HANDSHAKE: Final[dict[str, Callable[[socket.socket, bytes], bytes]]] = {
    "http": _http,
    "echo": _echo,
    "greet": _greet,
}


def wind_down(sock: socket.socket) -> None:
    """Close gracefully after a failure: unread input would turn close() into a reset,
    and a reset can destroy the alert the client has not read yet."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_WR)
        while socket.socket.recv(sock, 65536):
            pass


# -- strict ALPN ---------------------------------------------------------------------


def _peek(sock: socket.socket, size: int) -> bytes:
    """Up to ``size`` waiting bytes, left in the socket (fewer: the caller gives up)."""
    return sock.recv(size, socket.MSG_PEEK | getattr(socket, "MSG_WAITALL", 0))


def alpn_mismatch(sock: socket.socket, supported: Sequence[str]) -> bool:
    """Whether the waiting ClientHello offers ALPN, but none of ``supported``."""
    header = _peek(sock, 5)
    if len(header) < 5 or header[0] != 22:
        return False
    record = _peek(sock, 5 + int.from_bytes(header[3:5], "big"))
    try:
        msg_type, body = _wire.split_handshake(record[5:])
        offered = _wire.parse_client_hello(body).alpn if msg_type == 1 else ()
    except ParseError:  # split over records, or not a ClientHello: let OpenSSL decide
        return False
    return bool(offered) and not set(offered) & set(supported)


def refuse(sock: socket.socket) -> None:
    """Read the ClientHello, answer a fatal no_application_protocol alert, close."""
    header = sock.recv(5, socket.MSG_PEEK)
    _read(sock, 5 + int.from_bytes(header[3:5], "big"))
    sock.sendall(_ALERT_NO_APPLICATION_PROTOCOL)
    sock.shutdown(socket.SHUT_WR)
    drain(sock)


def _read(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return bytes(data)
