"""TimedSSLContext: a drop-in ``ssl.SSLContext`` that turns every handshake into a span.

How it works, in one paragraph: the context installs OpenSSL's message
callback (CPython's private ``_msg_callback`` seam, set at the C level to skip
the enum-converting wrapper). The callback appends one tuple per TLS record
header and message to a list kept on the connection object. The connection
classes (``sslsocket_class``/``sslobject_class``) mark each call into
``do_handshake``; when the handshake completes or fails they freeze the list
into a :class:`~tlstiming.HandshakeSpan`, hand it to the sinks, and clear
OpenSSL's callback for that connection (it keeps its context) so that the
data path after the handshake runs exactly as fast as plain ``ssl``.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from tlstiming._recording import conn as _conn
from tlstiming._recording import detach as _detach
from tlstiming._recording import native as _native
from tlstiming._recording import staple as _staple
from tlstiming._recording.connections import TimedSSLObject, TimedSSLSocket, timed_class
from tlstiming._recording.decide import guard
from tlstiming._recording.keys import EVENTS
from tlstiming._recording.peer import remember_caller
from tlstiming._recording.trust import TrustAccount
from tlstiming._recording.verify import OnError, PeerInfo, Verdict, VerifierSpec
from tlstiming.spans.context_stats import ContextStats
from tlstiming.spans.handshake import Sink

__all__ = ["TimedSSLContext", "create_default_context"]

# CPython's private seam (3.8+). Without it a TimedSSLContext is a plain context.
_C_MSG_CALLBACK: Any = getattr(ssl._SSLContext, "_msg_callback", None)  # type: ignore[attr-defined]
_C_SNI_CALLBACK: Any = ssl._SSLContext.sni_callback  # type: ignore[attr-defined]
_PY_MSG_CALLBACK: Any = vars(ssl.SSLContext)["_msg_callback"]


class TimedSSLContext(ssl.SSLContext):
    """An :class:`ssl.SSLContext` whose handshakes produce :class:`~tlstiming.HandshakeSpan` s.

    Use it exactly like ``ssl.SSLContext``; everything it does for a caller
    is unchanged. Add sinks with :meth:`add_sink` and read a connection's
    span with :func:`tlstiming.span_of`.
    """

    _tlstiming_sinks: tuple[Sink, ...]
    _tlstiming_user_msg_callback: Callable[..., Any] | None
    _tlstiming_user_sni_callback: Callable[..., Any] | None
    _tlstiming_socket_class: type[ssl.SSLSocket]
    _tlstiming_object_class: type[ssl.SSLObject]
    _tlstiming_verifiers: tuple[VerifierSpec, ...]
    _tlstiming_trust: TrustAccount
    _tlstiming_staple: _staple.StapleSource | None

    def __new__(cls, protocol: int | None = None, *args: Any, **kwargs: Any) -> TimedSSLContext:
        start = time.perf_counter_ns()
        if protocol is None:
            self = _deprecated_default(cls, args, kwargs)
        else:
            self = super().__new__(cls, protocol, *args, **kwargs)
        self._tlstiming_trust = TrustAccount(time.perf_counter_ns() - start)
        self._tlstiming_verifiers = ()
        self._tlstiming_sinks = ()
        self._tlstiming_user_msg_callback = None
        self._tlstiming_user_sni_callback = None
        self._tlstiming_socket_class = TimedSSLSocket
        self._tlstiming_object_class = TimedSSLObject
        self._tlstiming_staple = None
        if _C_MSG_CALLBACK is not None:
            _C_MSG_CALLBACK.__set__(self, _conn.on_message)
        _native.prepare(self)
        return self

    # -- sinks -------------------------------------------------------------

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks that receive this context's spans, in call order."""
        return self._tlstiming_sinks

    def add_sink(self, sink: Sink) -> None:
        """Deliver every span of this context to ``sink`` (any callable taking a span).

        A sink runs on the thread that made the handshake, right after it
        completes; an exception it raises is logged and never reaches the
        connection.
        """
        if not callable(sink):
            raise TypeError(f"sink must be callable, not {type(sink).__name__}")
        self._tlstiming_sinks = (*self._tlstiming_sinks, sink)

    def remove_sink(self, sink: Sink) -> None:
        """Stop delivering to ``sink``. Raises ``ValueError`` if it was not added."""
        sinks = list(self._tlstiming_sinks)
        sinks.remove(sink)
        self._tlstiming_sinks = tuple(sinks)

    # -- verifiers ---------------------------------------------------------

    @property
    def verifiers(self) -> tuple[VerifierSpec, ...]:
        """The verifiers run after every handshake, in order."""
        return self._tlstiming_verifiers

    def add_verifier(
        self,
        verifier: Callable[[PeerInfo], Verdict | None],
        *,
        name: str | None = None,
        timeout: float | None = None,
        on_error: OnError = "reject",
    ) -> None:
        """Run ``verifier`` after every handshake, before the caller gets the connection.

        Args:
            verifier: called with a :class:`~tlstiming.PeerInfo`; returns
                ``None`` or a :class:`~tlstiming.Verdict`, or raises
                :class:`~tlstiming.VerificationFailed` to reject.
            name: its name on the span (phase ``verify:<name>``); defaults
                to the verifier's ``name`` attribute, else its ``__name__``.
            timeout: seconds (finite, > 0); if set, the verifier runs on one
                of its own worker threads and the caller stops waiting for it
                after that long. Another verifier's overrun never delays it.
            on_error: what an unexpected exception or a timeout does:
                ``"reject"`` (the default: fail closed) or ``"accept"``.
                Both are recorded on the span.

        Raises:
            TypeError: ``verifier`` is not callable, or its name (given or
                its ``name`` attribute) is not a str.
            ValueError: an empty name, a bad ``timeout`` or ``on_error``.
        """
        if name is None:
            name = getattr(verifier, "name", None)
            if name is None:
                name = getattr(verifier, "__name__", None) or type(verifier).__name__
        spec = VerifierSpec(verifier, name, timeout, on_error)  # validates each argument
        self._tlstiming_verifiers = (*self._tlstiming_verifiers, spec)

    def remove_verifier(self, verifier: Callable[[PeerInfo], Verdict | None]) -> None:
        """Stop running ``verifier``. Raises ``ValueError`` if it was not added."""
        kept = tuple(s for s in self._tlstiming_verifiers if s.verifier is not verifier)
        if len(kept) == len(self._tlstiming_verifiers):
            raise ValueError("verifier not registered")
        self._tlstiming_verifiers = kept

    # -- OCSP stapling ---------------------------------------------------------

    @property
    def ocsp_stapling(self) -> bool:
        """Whether client handshakes ask the server for an OCSP staple (``status_request``).

        Off by default, so a ClientHello is what plain ``ssl`` sends. When on,
        a staple the server sends is on the span (``facts.ocsp_stapled``,
        ``facts.ocsp_response``) and :class:`~tlstiming.verifiers.OCSPVerifier`
        checks it before asking the responder. Setting it needs native hooks
        (:func:`tlstiming.implementation`).

        Raises:
            TypeError: the value is not a bool.
            NotImplementedError: on setting ``True`` where native hooks are off.
        """
        return _staple.get_request(self)

    @ocsp_stapling.setter
    def ocsp_stapling(self, value: bool) -> None:
        _staple.set_request(self, value)

    def set_ocsp_staple(self, staple: _staple.StapleSource | None) -> None:
        """Staple an OCSP response to this server context's handshakes.

        Sent to clients that ask (``status_request``): in CertificateStatus
        on TLS 1.2, in the leaf's Certificate entry on TLS 1.3.

        Args:
            staple: a DER OCSP response (checked now); or a callable, called
                on each handshake that asks, with the server name the client
                requested (``None`` without SNI), returning DER or ``None``
                for no staple (what it raises is logged: that handshake goes
                without a staple); or ``None`` to stop stapling.
                :class:`tlstiming.stapling.OCSPStapler` is such a callable.

        Raises:
            TypeError: ``staple`` is neither bytes, a callable nor None.
            ValueError: the bytes are not a DER OCSP response.
            NotImplementedError: native hooks are off here.
        """
        _staple.set_staple(self, staple)

    def _tlstiming_staple_for(self, server_name: str | None) -> bytes | None:
        return _staple.staple_for(self, server_name)

    # -- trust-store cost ----------------------------------------------------

    @property
    def trust_stats(self) -> ContextStats:
        """What building this context and loading its trust store cost so far."""
        account = self._tlstiming_trust
        return ContextStats(
            context_id=account.context_id,
            build_ns=account.build_ns,
            trust_loads=account.loads,
            trust_load_ns=account.load_ns,
            handshake_index=account.handshakes,
            trust_loads_since_previous=account.loads - account.loads_seen,
        )

    def load_verify_locations(
        self,
        cafile: Any = None,
        capath: Any = None,
        cadata: Any = None,
    ) -> None:
        start = time.perf_counter_ns()
        try:
            super().load_verify_locations(cafile, capath, cadata)
        finally:
            self._tlstiming_trust.record_load(time.perf_counter_ns() - start)

    def set_default_verify_paths(self) -> None:
        start = time.perf_counter_ns()
        try:
            super().set_default_verify_paths()
        finally:
            self._tlstiming_trust.record_load(time.perf_counter_ns() - start)

    # -- the seams plain ssl offers, kept working ------------------------------

    def wrap_socket(
        self,
        sock: Any,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        conn: ssl.SSLSocket = self._tlstiming_socket_class._create(  # type: ignore[attr-defined]
            sock=sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            context=self,
            session=session,
        )
        if EVENTS not in conn.__dict__:  # no handshake yet: read/write may drive it
            _detach.rearm(conn)
            if self._tlstiming_verifiers:
                guard(conn)
        return conn

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        conn: ssl.SSLObject = self._tlstiming_object_class._create(  # type: ignore[attr-defined]
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=self._encode_hostname(server_hostname),  # type: ignore[attr-defined]
            session=session,
            context=self,
        )
        remember_caller(conn, sys._getframe(1))  # asyncio's SSLProtocol knows the peer
        _detach.rearm(conn)  # read/write may drive the handshake (see _detach.rearm)
        if self._tlstiming_verifiers:
            guard(conn)
        return conn

    # Libraries set these on a context instance; whatever they set is used,
    # with the timing mixed in, so instrumentation is never silently lost.
    @property
    def sslsocket_class(self) -> type[ssl.SSLSocket]:
        return getattr(self._tlstiming_socket_class, "_tlstiming_user_class", TimedSSLSocket)

    @sslsocket_class.setter
    def sslsocket_class(self, cls: type[ssl.SSLSocket]) -> None:
        self._tlstiming_socket_class = timed_class(cls, TimedSSLSocket)

    @property
    def sslobject_class(self) -> type[ssl.SSLObject]:
        return getattr(self._tlstiming_object_class, "_tlstiming_user_class", TimedSSLObject)

    @sslobject_class.setter
    def sslobject_class(self, cls: type[ssl.SSLObject]) -> None:
        self._tlstiming_object_class = timed_class(cls, TimedSSLObject)

    @property
    def _msg_callback(self) -> Callable[..., Any] | None:
        return self._tlstiming_user_msg_callback

    @_msg_callback.setter
    def _msg_callback(self, callback: Callable[..., Any] | None) -> None:
        if _C_MSG_CALLBACK is None:
            if callback is not None and not callable(callback):
                raise TypeError(f"{callback} is not callable.")
            self._tlstiming_user_msg_callback = callback
            return
        if callback is None:
            self._tlstiming_user_msg_callback = None
            _C_MSG_CALLBACK.__set__(self, _conn.on_message)
            return
        # Let ssl validate it and build its enum-converting wrapper, then chain it.
        _PY_MSG_CALLBACK.fset(self, callback)
        inner = _C_MSG_CALLBACK.__get__(self)
        self._tlstiming_user_msg_callback = callback
        _C_MSG_CALLBACK.__set__(self, _conn.chained_on_message(inner))

    @property
    def sni_callback(self) -> Callable[..., Any] | None:
        return self._tlstiming_user_sni_callback

    @sni_callback.setter
    def sni_callback(self, callback: Callable[..., Any] | None) -> None:
        _C_SNI_CALLBACK.__set__(self, callback)  # ssl's own validation and errors
        self._tlstiming_user_sni_callback = callback
        if callback is not None:
            _C_SNI_CALLBACK.__set__(self, _conn.timed_sni_callback(callback))

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


def _deprecated_default(
    cls: type[TimedSSLContext], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TimedSSLContext:
    """``TimedSSLContext()`` with no protocol: ssl's warnings, pointing at the caller."""
    import warnings  # noqa: PLC0415

    warnings.warn(
        "ssl.SSLContext() without protocol argument is deprecated.",
        category=DeprecationWarning,
        stacklevel=3,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        self = ssl.SSLContext.__new__(cls, ssl.PROTOCOL_TLS, *args, **kwargs)
    for warning in caught:
        warnings.warn(warning.message, category=warning.category, stacklevel=3)
    return self


def create_default_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> TimedSSLContext:
    """Same signature, defaults and trust as :func:`ssl.create_default_context`.

    Returns:
        A :class:`TimedSSLContext`.
    """
    if not isinstance(purpose, ssl._ASN1Object):
        raise TypeError(purpose)
    if purpose == ssl.Purpose.SERVER_AUTH:
        context = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
    elif purpose == ssl.Purpose.CLIENT_AUTH:
        context = TimedSSLContext(ssl.PROTOCOL_TLS_SERVER)
    else:
        raise ValueError(purpose)
    if sys.version_info >= (3, 13):
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    elif context.verify_mode != ssl.CERT_NONE:
        context.load_default_certs(purpose)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context


TimedSSLContext.__module__ = "tlstiming.context"  # its public home
create_default_context.__module__ = "tlstiming.context"
