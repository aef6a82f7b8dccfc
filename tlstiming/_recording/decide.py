"""The decision at a handshake's end: run the verifiers, refuse a rejected connection.

It never raises and fails closed: a failure of tlstiming's own code while
deciding rejects the connection. A context with verifiers also guards each
connection it makes, so that a handshake driven by the first read or write
runs them before any application data crosses (:func:`guard`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from tlstiming._analysis.timeline import RawEvent
from tlstiming._recording.keys import CONTEXT, GUARDS, REJECTED
from tlstiming._recording.verify import (
    PeerInfo,
    Verification,
    VerifierRejected,
    describe,
    run_verifiers,
)
from tlstiming._wire.names import VERIFY_END, VERIFY_START

if TYPE_CHECKING:
    from tlstiming._analysis.facts import HandshakeFacts

__all__ = ["Decision", "decide", "guard", "refuse", "unguard"]

_log = logging.getLogger("tlstiming")

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns

Decision = tuple[VerifierRejected | None, tuple[Verification, ...], "HandshakeFacts | None"]
"""The rejection (or ``None``), the verifications that ran, the facts parsed for them."""

_NOTHING: Final[Decision] = (None, (), None)


def decide(conn: Any, events: list[RawEvent], exc: BaseException | None) -> Decision:
    """Run the verifiers of a handshake that OpenSSL accepted. Never raises; fails closed.

    A failure of tlstiming's own code on the way (reading the peer, marking
    the timeline) rejects the connection: no failure here becomes an accept.
    """
    if exc is not None:
        return _NOTHING
    verifiers: tuple[Any, ...] = getattr(conn.__dict__.get(CONTEXT), "_tlstiming_verifiers", ())
    if not verifiers:
        return _NOTHING
    try:
        return _verify(conn, events, verifiers)
    except Exception as failure:
        _log.error(
            "tlstiming: verification could not run; the connection is rejected", exc_info=failure
        )
        reason = f"verification could not run ({describe(failure)})"
        return VerifierRejected("tlstiming", reason), (), None


def _verify(conn: Any, events: list[RawEvent], verifiers: tuple[Any, ...]) -> Decision:
    """Run ``verifiers``; their start and end become markers on the timeline.

    The facts parsed for them are returned so the span need not parse again.
    """

    def mark(name: str, starting: bool) -> int:
        now = _perf()
        kind = VERIFY_START if starting else VERIFY_END
        events.append((now, _cpu(), "", kind, 0, name.encode()))
        return now

    peer, facts = _peer_info(conn, events)
    checks, rejected = run_verifiers(verifiers, peer, mark)
    return rejected, tuple(checks), facts


def _peer_info(conn: Any, events: list[RawEvent]) -> tuple[PeerInfo, HandshakeFacts]:
    from tlstiming._analysis.facts import facts_of  # noqa: PLC0415

    server_side = conn.server_side
    facts = facts_of(events, "server" if server_side else "client")
    chain = facts.client_certificates_der if server_side else facts.certificates_der
    if not chain:  # resumed: the session remembers only the peer's leaf
        leaf = conn.getpeercert(binary_form=True)
        chain = (leaf,) if leaf else ()
    peer = PeerInfo(
        side="server" if server_side else "client",
        server_hostname=conn.server_hostname,
        sni=facts.sni,
        alpn=conn.selected_alpn_protocol(),
        protocol_version=facts.protocol_version,
        resumed=facts.resumed,
        chain_der=tuple(chain),
        ocsp_staple=facts.ocsp_response,
        context=conn.__dict__[CONTEXT],
        may_block=isinstance(conn, ssl.SSLSocket) and conn.gettimeout() != 0.0,
    )
    return peer, facts


def refuse(conn: Any) -> None:
    """Cut a rejected connection before any application data can cross it.

    A socket is shut down; on any connection, reading, writing and
    handshaking again raise the rejection, so a caller that ignores the
    exception still gets no data across (memory BIOs included).
    """
    d = conn.__dict__
    if isinstance(conn, ssl.SSLSocket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(conn, socket.SHUT_RDWR)
    rejected = d.get(REJECTED)
    if rejected is not None:
        refused = _raiser(rejected)
        for name in (*_IO_METHODS, "do_handshake"):
            d[name] = refused


def _raiser(rejected: VerifierRejected) -> Callable[..., Any]:
    verifier, reason = rejected.verifier, rejected.verify_message

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise VerifierRejected(verifier, reason)

    return refused


# -- verifiers before the first byte of a read/write-driven handshake ----------

_IO_METHODS: Final = ("read", "write", "send")  # SSLSocket's recv*, sendall, sendfile use these


def guard(conn: Any) -> None:
    """Make the first read or write of ``conn`` run the handshake through ``do_handshake``.

    Without ``do_handshake_on_connect`` (or on a memory BIO) OpenSSL runs the
    handshake inside the first read or write and would pass application data
    in the same call, before any verifier ran. A context with verifiers
    guards each connection it makes until its handshake ends.
    """
    ref = weakref.ref(conn)
    d = conn.__dict__
    for name in _IO_METHODS:
        if hasattr(type(conn), name):
            d[name] = _guarded(ref, name)
    d[GUARDS] = True


def _guarded(ref: weakref.ref[Any], name: str) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        conn: Any = ref()
        if GUARDS in conn.__dict__ and getattr(conn, "_sslobj", None) is not None:
            conn.do_handshake()  # the verifiers run here; a rejection raises
            unguard(conn.__dict__)
        return getattr(conn, name)(*args, **kwargs)

    return guarded


def unguard(d: dict[str, Any]) -> None:
    """Undo :func:`guard` on the connection whose ``__dict__`` is ``d``."""
    if d.pop(GUARDS, None):
        for name in _IO_METHODS:
            d.pop(name, None)
