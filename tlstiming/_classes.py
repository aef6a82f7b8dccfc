"""The connection classes a TimedSSLContext makes: SSLSocket and SSLObject, recorded.

They change nothing but ``do_handshake`` (recorded by :func:`tlstiming._conn.drive`)
and what the move off the data path needs: ``context`` and ``session`` still
answer with the caller's context after the connection moved to the quiet twin.
"""

from __future__ import annotations

import contextlib
import ssl
import weakref
from typing import Any

from tlstiming import _conn

__all__ = ["TimedSSLObject", "TimedSSLSocket", "timed_class"]

_SOCKET_CONTEXT: Any = ssl.SSLSocket.context
_SOCKET_SESSION: Any = ssl.SSLSocket.session
_OBJECT_SESSION: Any = ssl.SSLObject.session


class TimedSSLSocket(ssl.SSLSocket):
    """``ssl.SSLSocket`` that records its handshake. Used by :class:`TimedSSLContext`."""

    def do_handshake(self, block: bool = False) -> None:
        _conn.drive(self, super().do_handshake, block)

    @property
    def context(self) -> ssl.SSLContext:
        return self._context  # type: ignore[attr-defined,no-any-return]

    @context.setter
    def context(self, ctx: ssl.SSLContext) -> None:
        _conn.forget_detach(self)
        _SOCKET_CONTEXT.fset(self, ctx)

    @property
    def session(self) -> ssl.SSLSession | None:
        return _conn.session_of(self)

    @session.setter
    def session(self, session: ssl.SSLSession | None) -> None:
        _SOCKET_SESSION.fset(self, session)

    def verify_client_post_handshake(self) -> None:
        _conn.reattach(self)
        super().verify_client_post_handshake()

    def _real_close(self) -> None:
        _conn.close_pending(self)
        super()._real_close()  # type: ignore[misc]


class TimedSSLObject(ssl.SSLObject):
    """``ssl.SSLObject`` that records its handshake. Used by :class:`TimedSSLContext`."""

    def do_handshake(self) -> None:
        _conn.drive(self, super().do_handshake)

    @property
    def context(self) -> ssl.SSLContext:
        detached = self.__dict__.get(_conn.DETACHED)
        return detached if detached is not None else self._sslobj.context  # type: ignore[attr-defined,no-any-return]

    @context.setter
    def context(self, ctx: ssl.SSLContext) -> None:
        _conn.forget_detach(self)
        self._sslobj.context = ctx  # type: ignore[attr-defined]

    @property
    def session(self) -> ssl.SSLSession | None:
        return _conn.session_of(self)

    @session.setter
    def session(self, session: ssl.SSLSession | None) -> None:
        _OBJECT_SESSION.fset(self, session)

    def verify_client_post_handshake(self) -> None:
        _conn.reattach(self)
        super().verify_client_post_handshake()

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
