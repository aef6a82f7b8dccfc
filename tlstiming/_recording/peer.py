"""The peer's (address, port) of a connection, on the socket and the BIO paths.

An ``SSLSocket`` knows its peer (``getpeername``), read when its handshake
starts (:func:`remember_socket`): a client that closes right after its own
handshake may have reset the connection by the time the server's ends. An ``SSLObject`` knows
nothing but its two memory BIOs; whoever moves the bytes knows the peer.
asyncio's ``SSLProtocol`` builds its ``SSLObject`` in its ``__init__`` (3.11+),
before it has a transport, so :func:`remember_caller` keeps a weak reference to the
protocol that called ``wrap_bio`` and :func:`peer_of` asks that protocol's
transport for ``peername`` when the handshake ends (asyncio's
``start_server``, ``create_server``, ``open_connection``, and the servers
built on them: hypercorn, uvicorn). Other BIO users (uvloop's own
``SSLProtocol``, anyio, trio) are not recognised: their spans have no peer
unless the caller sets one with :func:`set_peer`.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import weakref
from types import FrameType
from typing import Any, Final

__all__ = ["PEER", "peer_of", "remember_caller", "remember_socket", "set_peer"]

PEER: Final = "_tlstiming_peer"  # (address, port), or a weak reference to who knows it
_FRAMES: Final = 3  # how far up from wrap_bio to look for asyncio's SSLProtocol


def set_peer(conn: ssl.SSLObject | ssl.SSLSocket, address: tuple[str, int]) -> None:
    """Record ``address`` as the peer of ``conn``, for its span.

    For code that drives an ``SSLObject`` from a ``TimedSSLContext.wrap_bio``
    itself: it knows the peer, the ``SSLObject`` does not. Call it before the
    handshake ends (right after ``wrap_bio``).

    Args:
        conn: the connection (``SSLObject`` or ``SSLSocket``).
        address: the peer's (host, port); IPv6 tuples may carry more items.
    """
    conn.__dict__[PEER] = (address[0], address[1])


def remember_socket(conn: ssl.SSLSocket) -> None:
    """Read the peer of a socket connection now, while it is surely connected."""
    with contextlib.suppress(OSError, ValueError):
        conn.__dict__[PEER] = _address(conn.getpeername())


def remember_caller(conn: Any, frame: FrameType | None) -> None:
    """Keep a weak reference to the asyncio ``SSLProtocol`` that (indirectly) called ``wrap_bio``.

    ``frame`` is ``wrap_bio``'s caller. Python 3.11+ calls it from
    ``SSLProtocol.__init__``, 3.10 from ``_SSLPipe.do_handshake`` under
    ``SSLProtocol._start_handshake``; a subclass's ``wrap_bio`` adds a frame.
    Only frames of asyncio's ``sslproto`` module are looked into.
    """
    sslproto = sys.modules.get("asyncio.sslproto")
    if sslproto is None:
        return
    for _ in range(_FRAMES):
        if frame is None:
            return
        if frame.f_code.co_filename == sslproto.__file__:
            owner = frame.f_locals.get("self")
            if isinstance(owner, sslproto.SSLProtocol):
                conn.__dict__[PEER] = weakref.ref(owner)
                return
        frame = frame.f_back


def peer_of(conn: Any) -> tuple[str, int] | None:
    """The peer's (address, port) of ``conn``, or ``None`` if unknown."""
    known = conn.__dict__.get(PEER)
    if known is None and isinstance(conn, ssl.SSLSocket):
        remember_socket(conn)
        known = conn.__dict__.get(PEER)
    if known is None or isinstance(known, tuple):
        return known
    protocol = known()
    transport = getattr(protocol, "_transport", None)
    if transport is None:
        return None
    address = _address(transport.get_extra_info("peername"))
    conn.__dict__[PEER] = address
    return address


def _address(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:  # IPv6 has four
        return (str(address[0]), int(address[1]))
    return None
