"""Per-connection recording: the message callback, the handshake's end, the detach.

Everything a connection records lives in its own ``__dict__`` (CPython builds
``SSLSocket``/``SSLObject`` with ``cls.__new__``, so no ``__init__`` of ours
ever runs): concurrent handshakes never share state, whatever thread or task
drives them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import time
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from tlstiming._analysis.timeline import (
    ENTER,
    EXIT,
    SNI_END,
    SNI_START,
    VERIFY_END,
    VERIFY_START,
    RawEvent,
)
from tlstiming._recording import delivery as _delivery
from tlstiming._recording.detach import MSG_CALLBACK_SEAM as _C_MSG_CALLBACK
from tlstiming._recording.detach import detach as _detach
from tlstiming._recording.detach import rearm
from tlstiming._recording.verify import (
    PeerInfo,
    Verification,
    VerifierRejected,
    describe,
    run_verifiers,
)
from tlstiming._wire.names import alert_name
from tlstiming.errors import HandshakeAbandoned
from tlstiming.spans import build as _build
from tlstiming.spans.build import build_span
from tlstiming.spans.handshake import HandshakeSpan

if TYPE_CHECKING:
    from tlstiming._analysis.facts import HandshakeFacts

__all__ = [
    "chained_on_message",
    "close_pending",
    "drive",
    "on_message",
    "settle_pending",
    "span_of",
    "timed_sni_callback",
]

_log = logging.getLogger("tlstiming")

_perf = time.perf_counter_ns
_cpu = time.thread_time_ns
_unix_ns = time.time_ns

EVENTS: Final = "_tlstiming_events"  # list while recording, None once done
CONTEXT: Final = "_tlstiming_context"  # the TimedSSLContext the handshake began on
SPAN: Final = "_tlstiming_span"
PENDING: Final = "_tlstiming_pending"  # the handshake's events while awaiting a TLS 1.3 verdict
CERTIFICATE_REQUEST: Final = "_tlstiming_certificate_request"  # set when one was seen
CHECKS: Final = "_tlstiming_checks"  # verifications of a span awaiting its TLS 1.3 verdict
REJECTED: Final = "_tlstiming_rejected"  # the VerifierRejected a connection was refused with
GUARDS: Final = "_tlstiming_guards"  # read/write run do_handshake first (see guard())

_WANT: Final = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


def on_message(
    conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
) -> None:
    """OpenSSL's message callback: append one event to the connection's list. Hot path."""
    try:
        events = conn._tlstiming_events
    except AttributeError:
        events = _adopt(conn)
    if events is None:
        return
    if content_type == 22 or content_type == 21:  # noqa: PLR1714 (two int compares: fastest)
        events.append((_perf(), _cpu(), direction, content_type, msg_type, data))
        if msg_type == 13 and content_type == 22:
            conn._tlstiming_certificate_request = True
    else:  # record headers, inner content types, change_cipher_spec
        events.append((_perf(), -1, direction, content_type, msg_type, data))


def chained_on_message(inner: Callable[..., Any]) -> Callable[..., Any]:
    """Record, then call a user's own ``_msg_callback`` exactly as ssl would."""

    def on_message_and_user(
        conn: Any, direction: str, version: int, content_type: int, msg_type: int, data: bytes, /
    ) -> Any:
        on_message(conn, direction, version, content_type, msg_type, data)
        return inner(conn, direction, version, content_type, msg_type, data)

    return on_message_and_user


def timed_sni_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a server's ``sni_callback`` so its run time becomes the ``sni_callback`` phase."""

    def sni_callback(conn: Any, server_name: str | None, context: ssl.SSLContext) -> Any:
        events = getattr(conn, EVENTS, None)
        if events is not None:
            events.append((_perf(), _cpu(), "", SNI_START, 0, b""))
        try:
            return callback(conn, server_name, context)
        finally:
            if events is not None:
                events.append((_perf(), _cpu(), "", SNI_END, 0, b""))

    sni_callback.__wrapped__ = callback  # type: ignore[attr-defined]
    return sni_callback


def span_of(conn: Any) -> Any:
    """Return the span recorded on ``conn``, or ``None`` if it has none (yet)."""
    try:
        return conn.__dict__.get(SPAN)
    except AttributeError:
        return None


# -- the handshake's life on one connection ------------------------------------


def _enter(conn: Any) -> list[RawEvent] | None:
    d: dict[str, Any] = conn.__dict__
    if EVENTS not in d:
        rearm(conn)
        d[EVENTS] = []
        d[CONTEXT] = d.get("_context") or conn.context  # SSLSocket keeps it in _context
    events: list[RawEvent] | None = d[EVENTS]
    if events is None:
        return None
    events.append((_perf(), _cpu(), "", ENTER, 0, b""))
    return events


def _leave(conn: Any, events: list[RawEvent], exc: BaseException | None) -> VerifierRejected | None:
    """End the recording; return the exception to raise if a verifier rejected."""
    end = _perf()
    events.append((end, _cpu(), "", EXIT, 0, b""))
    return _finish(conn, events, end, exc)


def _finish(
    conn: Any, events: list[RawEvent], end: int, exc: BaseException | None
) -> VerifierRejected | None:
    """Everything after the handshake's EXIT mark (``_speedups`` calls this too).

    Two parts, kept apart on purpose: the decision (the verifiers), which
    never raises and fails closed, and the recording, whose failures are
    reported and never reach the connection. The catch-all wraps the
    recording only.
    """
    d: dict[str, Any] = conn.__dict__
    d[EVENTS] = None
    if GUARDS in d:
        _unguard(d)
    rejected, checks, facts = _decide(conn, events, exc)
    if rejected is not None:
        d[REJECTED] = exc = rejected
    if checks or rejected is not None:
        end = events[-1][0]
    try:
        if exc is not None:
            _publish(conn, _span(conn, events, end, exc, verifications=checks), facts)
        elif CERTIFICATE_REQUEST in d and _awaits_verdict(conn, events):
            # TLS 1.3 client auth: the server's verdict arrives with the first read.
            d[SPAN] = _span(conn, events, end, None, verifications=checks)
            d[PENDING] = events  # the handshake's own events, no longer appended to
            d[EVENTS] = _AfterHandshake()  # from now on only what the verdict needs
            d[CHECKS] = checks
            conn.read = _settling_read(conn)
        else:
            _complete(conn, d, events, end, checks, facts)
    except Exception as failure:
        _record_failed(failure)
    return rejected


def _record_failed(failure: BaseException) -> None:
    _log.error(
        "tlstiming: failed to record a handshake; the connection is unaffected", exc_info=failure
    )


def _decide(
    conn: Any, events: list[RawEvent], exc: BaseException | None
) -> tuple[VerifierRejected | None, tuple[Verification, ...], HandshakeFacts | None]:
    """Run the verifiers of a handshake that OpenSSL accepted. Never raises; fails closed.

    A failure of tlstiming's own code on the way (reading the peer, marking
    the timeline) rejects the connection: no failure here becomes an accept.
    """
    if exc is not None:
        return None, (), None
    verifiers: tuple[Any, ...] = getattr(conn.__dict__.get(CONTEXT), "_tlstiming_verifiers", ())
    if not verifiers:
        return None, (), None
    try:
        return _verify(conn, events, verifiers)
    except Exception as failure:
        _log.error(
            "tlstiming: verification could not run; the connection is rejected", exc_info=failure
        )
        reason = f"verification could not run ({describe(failure)})"
        return VerifierRejected("tlstiming", reason), (), None


def _verify(
    conn: Any, events: list[RawEvent], verifiers: tuple[Any, ...]
) -> tuple[VerifierRejected | None, tuple[Verification, ...], HandshakeFacts]:
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
    from tlstiming._analysis.facts import build_facts  # noqa: PLC0415

    server_side = conn.server_side
    facts = build_facts(
        [(e[2], e[3], e[4], e[5]) for e in events if e[3] >= 0],
        side="server" if server_side else "client",
    )
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


def _refuse(conn: Any) -> None:
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
            _unguard(conn.__dict__)
        return getattr(conn, name)(*args, **kwargs)

    return guarded


def _unguard(d: dict[str, Any]) -> None:
    if d.pop(GUARDS, None):
        for name in _IO_METHODS:
            d.pop(name, None)


def _complete(
    conn: Any,
    d: dict[str, Any],
    events: list[RawEvent],
    end: int,
    checks: tuple[Verification, ...] = (),
    facts: HandshakeFacts | None = None,
) -> None:
    """The common case: build, deliver, detach.

    It runs on every handshake, right after OpenSSL has evicted the
    interpreter from the CPU caches, where every extra function, attribute
    and object touched costs microseconds: keep it short.
    """
    server_side = conn.server_side
    context = d[CONTEXT]
    account = getattr(context, "_tlstiming_trust", None)
    span = d[SPAN] = HandshakeSpan(
        next(_build.ids),
        server_side,
        conn.server_hostname,
        _peer(conn),
        tuple(events),  # a tuple of tuples of atoms leaves the garbage collector's watch
        end,
        _unix_ns(),
        None,
        None if account is None else account.on_handshake(),
        checks,
    )
    if facts is not None:
        span._facts = facts
    for sink in getattr(context, "_tlstiming_sinks", ()):
        try:
            sink(span)
        except Exception:
            _delivery.report(sink, span)
    if _delivery.global_sinks:
        _delivery.deliver(None, span)
    _detach(conn)


def _span(
    conn: Any,
    events: list[RawEvent],
    end: int,
    exc: BaseException | None,
    after: BaseException | None = None,
    verifications: tuple[Verification, ...] = (),
) -> HandshakeSpan:
    account = getattr(conn.__dict__.get(CONTEXT), "_tlstiming_trust", None)
    return build_span(
        events,
        server_side=conn.server_side,
        end_ns=end,
        server_hostname=conn.server_hostname,
        peer=_peer(conn),
        exc=exc,
        post_handshake_exc=after,
        context=None if account is None else account.on_handshake(),
        verifications=verifications,
    )


def _publish(conn: Any, span: Any, facts: HandshakeFacts | None = None) -> None:
    if facts is not None:
        span._facts = facts
    d = conn.__dict__
    d[SPAN] = span
    _delivery.deliver(d.get(CONTEXT), span)


def _peer(conn: Any) -> tuple[str, int] | None:
    if not isinstance(conn, ssl.SSLSocket):
        return None
    try:
        address = conn.getpeername()
    except (OSError, ValueError):
        return None
    return (address[0], address[1]) if isinstance(address, tuple) else None


def _awaits_verdict(conn: Any, events: list[RawEvent]) -> bool:
    """A client was asked for a certificate and spoke last: TLS 1.3, verdict pending."""
    if conn.server_side:
        return False
    last = next((e for e in reversed(events) if e[3] == 22), None)
    return last is not None and last[2] == "write"


def _settling_read(conn: Any) -> Callable[..., Any]:
    ref = weakref.ref(conn)
    plain_read = type(conn).read

    def read(*args: Any, **kwargs: Any) -> Any:
        sock = ref()
        try:
            result = plain_read(sock, *args, **kwargs)
        except _WANT:
            raise
        except Exception as exc:
            _settle(sock, exc)
            raise
        _settle(sock, None)
        return result

    return read


def _settle(conn: Any, exc: BaseException | None) -> None:
    """Deliver a span that waited for the first read after a TLS 1.3 handshake."""
    d = conn.__dict__
    handshake = d.pop(PENDING, None)
    if handshake is None:
        return
    d.pop("read", None)
    after = d[EVENTS]
    d[EVENTS] = None
    try:
        events = [*handshake, *after]
        checks = d.pop(CHECKS, ())
        end = handshake[len(handshake) - 1][0]
        _publish(conn, _span(conn, events, end, None, exc, checks))
        if exc is None:
            _detach(conn)
    except Exception:
        _log.exception("tlstiming: failed to record a handshake; the connection is unaffected")


class _AfterHandshake(list[RawEvent]):
    """What a connection records between its handshake and the server's TLS 1.3 verdict.

    Only alerts (the verdict, if negative, is one), and only the first few:
    the connection may write any amount before it reads, in constant memory.
    """

    __slots__ = ()
    LIMIT: Final = 4

    def append(self, event: RawEvent) -> None:
        if event[3] == 21 and len(self) < self.LIMIT:
            super().append(event)


# -- connections made on a handshake that no do_handshake() call announced -----


class _Implicit(list[RawEvent]):
    """Events of a handshake driven by the first read/write instead of ``do_handshake``."""

    __slots__ = ("_conn", "_finished")

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = weakref.ref(conn)
        self._finished = 0

    def append(self, event: RawEvent) -> None:
        super().append(event)
        if event[3] == 22 and event[4] == 20:
            self._finished |= 1 if event[2] == "read" else 2
        elif event[3] == 21 and event[5][:1] == b"\x02":
            self._finished = -1
        else:
            return
        conn = self._conn()
        if conn is not None and self._finished in {3, -1}:
            _leave_implicit(conn, self)


def _adopt(conn: Any) -> list[RawEvent] | None:
    try:
        d = conn.__dict__
    except AttributeError:
        return None
    if not isinstance(conn, (ssl.SSLSocket, ssl.SSLObject)):
        d[EVENTS] = None
        return None
    events = d[EVENTS] = _Implicit(conn)
    d[CONTEXT] = conn.context
    return events


def _leave_implicit(conn: Any, events: list[RawEvent]) -> None:
    """End a handshake that a read or write drove: its exception is never seen here.

    Contexts with verifiers guard their connections (:func:`guard`) so this
    does not happen to them; should it anyway (a verifier added after the
    connection was made), the verifiers run here, inside OpenSSL's read or
    write, and a rejection shuts the socket and raises out of that call.
    """
    d = conn.__dict__
    d[EVENTS] = None
    alert = next((e for e in events if e[3] == 21 and e[5][:1] == b"\x02"), None)
    exc: BaseException | None = None
    if alert is not None:
        name = alert_name(alert[5][1]) if len(alert[5]) > 1 else "unknown"
        source = "sent" if alert[2] == "write" else "received"
        exc = ssl.SSLError(
            f"fatal alert {name} {source} during a handshake driven by read/write; "
            "the exception raised to the caller is not observable there"
        )
    rejected, checks, facts = _decide(conn, events, exc)
    try:
        _publish(
            conn, _span(conn, list(events), events[-1][0], rejected or exc, None, checks), facts
        )
    except Exception as failure:
        _record_failed(failure)
    if rejected is not None:
        d[REJECTED] = rejected
        _refuse(conn)
        raise rejected


def _abandon(conn: Any) -> None:
    """Deliver the span of a handshake its owner gave up on mid-way."""
    d = conn.__dict__
    events = d.get(EVENTS)
    if not events or PENDING in d:
        if PENDING in d:
            _settle(conn, None)
        return
    d[EVENTS] = None
    try:
        exc = HandshakeAbandoned(
            "the handshake was abandoned before it completed: the connection was closed or "
            "discarded outside do_handshake() (connection lost, or a timeout enforced by "
            "its owner)"
        )
        _publish(conn, _span(conn, list(events), _perf(), exc))
    except Exception:
        _log.exception("tlstiming: failed to record a handshake; the connection is unaffected")


def drive(conn: Any, handshake: Callable[..., None], *args: Any) -> None:
    """Run one ``do_handshake`` call of ``conn`` (``handshake(*args)``) and record it.

    A call that needs more data (``SSLWantReadError``/``SSLWantWriteError``,
    the non-blocking and BIO paths) only marks its end; the call that
    completes or fails the handshake ends the recording. The caller's
    exception passes through unchanged; a verifier's rejection is raised here.
    """
    events = _enter(conn)
    if events is None:
        handshake(*args)
        return
    try:
        handshake(*args)
    except _WANT:
        events.append((_perf(), _cpu(), "", EXIT, 0, b""))
        raise
    except BaseException as exc:
        _leave(conn, events, exc)
        raise
    rejected = _leave(conn, events, None)
    if rejected is not None:
        _refuse(conn)
        raise rejected


def close_pending(conn: Any) -> None:
    """The connection is closing: deliver a span still waiting or abandoned."""
    d = conn.__dict__
    if d.get(EVENTS) or PENDING in d:
        _abandon(conn)


def settle_pending(conn: Any) -> None:
    """Deliver a TLS 1.3 client-auth span still waiting for its first read."""
    if PENDING in conn.__dict__:
        _settle(conn, None)


# -- the C accelerator ---------------------------------------------------------

_py_on_message: Final = on_message
_py_drive: Final = drive


SPEEDUPS_VERSION: Final = 4  # the _speedups.c this code was written against

# HandshakeSpan's slots in the order _speedups fills them (its SLOT_* enum).
_SPAN_SLOTS: Final = (
    "_id",
    "_side",
    "_hostname",
    "_peer",
    "_start",
    "_end",
    "_unix",
    "_error",
    "_context",
    "_verifications",
    "_events",
    "_tiling",
    "_phases",
    "_records",
    "_messages",
    "_facts",
)


def configure(speedups: Any) -> None:
    """Give a build of ``_speedups.c`` the Python objects it calls."""
    speedups.configure(
        adopt=_adopt,
        finish=_finish,
        refuse=_refuse,
        failed=_record_failed,
        sink_failed=_delivery.report_exception,
        span_type=HandshakeSpan,
        build=_build,
        delivery=_delivery,
        want=_WANT,
        sslsocket=ssl.SSLSocket,
        msg_descr=_C_MSG_CALLBACK,
        perf=_perf,
        cpu=_cpu,
        unix=_unix_ns,
        span_slots=tuple(vars(HandshakeSpan)[name] for name in _SPAN_SLOTS),
    )


def _accelerate() -> bool:
    """Use ``tlstiming._recording._speedups`` for the hot path when it is built and allowed."""
    global on_message, drive
    if os.environ.get("TLSTIMING_PURE_PYTHON"):
        return False
    try:
        from tlstiming._recording import _speedups  # noqa: PLC0415
    except ImportError:
        return False
    if getattr(_speedups, "VERSION", None) != SPEEDUPS_VERSION:
        warnings.warn(
            f"tlstiming._recording._speedups at {_speedups.__file__} is stale (rebuild it, e.g. "
            "reinstall tlstiming); using the pure-Python code",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    configure(_speedups)
    on_message, drive = _speedups.on_message, _speedups.drive
    return True


ACCELERATED: Final = _accelerate()
"""Whether the C accelerator records this process's handshakes."""
