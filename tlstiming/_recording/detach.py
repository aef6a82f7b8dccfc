"""Getting a connection off OpenSSL's message callback, and back on.

After its handshake a connection stops calling back (:func:`detach`): the
data path then costs nothing. A connection born in the instant another one
detaches is put back on before its handshake (:func:`rearm`).
"""

from __future__ import annotations

import collections
import functools
import itertools
import operator
import ssl
from typing import Any, Final

__all__ = ["MSG_CALLBACK_SEAM", "detach", "rearm"]

MSG_CALLBACK_SEAM: Any = getattr(ssl._SSLContext, "_msg_callback", None)  # type: ignore[attr-defined]
"""CPython's C-level ``_msg_callback`` descriptor (``None`` where there is none)."""


def _run_in_c(steps: tuple[tuple[Any, ...], ...]) -> None:
    """Call ``f(*args)`` for each ``(f, *args)`` in one C loop: no Python frame between.

    What :func:`detach` does inline with ``operator.call`` (3.11+), through
    partials for Python 3.10.
    """
    calls = [functools.partial(step[0], *step[1:]) for step in steps]
    collections.deque(map(_CALL, calls), 0)


_OPERATOR_CALL: Any = getattr(operator, "call", None)
_CALL: Final = operator.methodcaller("__call__")


def detach(conn: Any) -> None:
    """Stop OpenSSL calling back for this connection, on the context it has.

    Assigning a connection's ``context`` makes CPython set OpenSSL's
    per-connection message callback from that context's ``_msg_callback``
    (NULL when it is None), and re-assigning the context it already has
    changes nothing else (OpenSSL returns at once). So: clear the context's
    callback, re-assign, restore. The three steps run as one chain of C calls
    (no Python frame in between, so no other thread can run Python or enter
    the callback while the context's callback is cleared; a connection that
    another thread creates in that instant is re-armed by :func:`rearm`). The
    connection keeps its context, its certificates and its trust store:
    renegotiation, post-handshake auth, ``getpeercert()``, ``shared_ciphers()``
    and ``session`` behave exactly as without tlstiming. Records after the
    handshake then cost nothing.
    """
    if MSG_CALLBACK_SEAM is None:  # a CPython without the seam records nothing anyway
        return
    sslobj = conn._sslobj
    context = sslobj.context
    if getattr(context, "_tlstiming_user_msg_callback", True) is not None:
        return  # the caller's own callback wants every record (or not our context)
    callback = MSG_CALLBACK_SEAM.__get__(context)
    if callback is None:
        return
    setter = MSG_CALLBACK_SEAM.__set__
    steps = (
        (setter, context, None),
        (setattr, sslobj, "context", context),
        (setter, context, callback),
    )
    if _OPERATOR_CALL is not None:  # 3.11+: the one C loop inline (a Python frame fewer)
        collections.deque(itertools.starmap(_OPERATOR_CALL, steps), 0)
    else:
        _run_in_c(steps)


def rearm(conn: Any) -> None:
    """Make sure OpenSSL calls back for ``conn``, however it was born.

    CPython creates a connection's OpenSSL object without holding the GIL, and
    OpenSSL copies the context's message callback into it at that instant.
    If another thread's :func:`detach` had just cleared the context's
    callback (for three C calls), the new connection would never call back.
    Assigning the connection its own context again sets its callback from
    the context's (see :func:`detach`); nothing else changes.
    """
    sslobj = conn.__dict__.get("_sslobj")  # None until a socket is connected
    if sslobj is not None:
        sslobj.context = sslobj.context
