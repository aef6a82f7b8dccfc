"""The connection classes a TimedSSLContext makes: SSLSocket and SSLObject, recorded.

They change nothing but ``do_handshake`` (recorded by :func:`tlstiming._recording.conn.drive`)
and deliver a span still pending when the connection is closed or dropped.
"""

from __future__ import annotations

import contextlib
import ssl
import weakref
from typing import Any

from tlstiming._recording import conn as _conn
from tlstiming._recording.peer import PEER, remember_socket

__all__ = ["TimedSSLObject", "TimedSSLSocket", "timed_class"]


class TimedSSLSocket(ssl.SSLSocket):
    """``ssl.SSLSocket`` that records its handshake. Used by :class:`TimedSSLContext`."""

    def do_handshake(self, block: bool = False) -> None:
        if PEER not in self.__dict__:  # now: a client gone by the handshake's end has no peer
            remember_socket(self)
        _conn.drive(self, super().do_handshake, block)

    def _real_close(self) -> None:
        _conn.close_pending(self)
        super()._real_close()  # type: ignore[misc]


class TimedSSLObject(ssl.SSLObject):
    """``ssl.SSLObject`` that records its handshake. Used by :class:`TimedSSLContext`."""

    def do_handshake(self) -> None:
        _conn.drive(self, super().do_handshake)

    def unwrap(self) -> Any:
        _conn.settle_pending(self)
        return super().unwrap()

    def __del__(self) -> None:
        # asyncio drops an SSLObject whose handshake lost its connection or
        # timed out without telling it: the span is delivered from here.
        with contextlib.suppress(Exception):  # at interpreter exit modules may be gone
            _conn.close_pending(self)


_derived: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def timed_class(cls: type, timed: type) -> type:
    """Mix the timing of ``timed`` into a caller's own connection class."""
    plain = timed.__bases__[0]
    if issubclass(cls, timed) or not issubclass(cls, plain):
        return cls
    derived = _derived.get(cls)
    if derived is None:
        derived = type(cls.__name__, (timed, cls), {"_tlstiming_user_class": cls})
        derived.__module__ = cls.__module__
        derived.__qualname__ = cls.__qualname__
        _derived[cls] = derived
    return derived
