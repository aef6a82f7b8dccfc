"""Turn one connection's recorded TLS messages into :class:`HandshakeFacts` (pure).

The input is what OpenSSL's message callback reported, as
``(direction, content_type, msg_type, data)`` tuples: ``direction`` is
``"read"`` or ``"write"``, ``content_type`` 22 carries one whole handshake
message (header included) and 21 an alert; other content types (20, and the
pseudo types 256/257 for record headers and TLS 1.3 inner content types) are
ignored. :func:`build_facts` never raises: a message that fails to parse adds
one line to :attr:`HandshakeFacts.parse_errors` and is otherwise skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from tlstiming._analysis.certs import CertificateInfo, certificate_info
from tlstiming._analysis.timeline import RawEvent
from tlstiming._wire import messages as _wire
from tlstiming._wire.names import (
    ALERT,
    CHAIN_END,
    CHAIN_START,
    HANDSHAKE,
    TLS1_2,
    TLS1_3,
    HandshakeType,
    alert_level_name,
    alert_name,
    cipher_name,
    group_name,
    handshake_type_name,
    signature_scheme_name,
    version_name,
)
from tlstiming.errors import ParseError

__all__ = [
    "AlertFact",
    "ChainVerification",
    "HandshakeFacts",
    "Sender",
    "build_facts",
    "chain_verification",
    "facts_of",
]

Sender = Literal["client", "server"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFact:
    """An alert seen during the connection: who sent it, its level and description."""

    sender: Sender
    level: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerification:
    """OpenSSL building and verifying the peer's certificate chain, measured exactly.

    Recorded by native hooks (around ``X509_verify_cert``), on clients and on
    servers that verify client certificates; its phase is ``chain_verification``.

    Attributes:
        start_ns: when it started (``perf_counter_ns`` clock).
        end_ns: when it returned.
        cpu_ns: this thread's CPU time inside it, if known.
        ok: OpenSSL's own verdict (with ``CERT_NONE`` a failure does not end
            the handshake).
        error: the X.509 verify code (``X509_V_ERR_*``; 0 when ``ok``).
        message: OpenSSL's words for ``error``.
        depth: where in the chain it failed (0 is the leaf; meaningful
            only when not ``ok``).
        chain_length: the chain OpenSSL built, trust anchor included (what
            it had got to when it failed).
    """

    start_ns: int
    end_ns: int
    cpu_ns: int | None
    ok: bool
    error: int
    message: str | None
    depth: int
    chain_length: int

    @property
    def duration_ns(self) -> int:
        """Wall time of the verification."""
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeFacts:
    """What a TLS handshake negotiated, as seen on the wire.

    The facts are the same whichever end recorded them. Definitions:

    - ``resumption_offered``: the first ClientHello carried ``pre_shared_key``
      or a non-empty ``session_ticket`` extension, or the handshake resumed.
      A TLS 1.2 session-ID-only offer that the server declined is invisible
      (the ID looks like any other).
    - ``resumed``: TLS 1.3, the ServerHello selected a ``pre_shared_key``;
      earlier versions, the server echoed the client's non-empty session ID,
      or sent no Certificate and its Finished came before the client's.
    - ``versions_offered``: the ClientHello's supported_versions, else its
      legacy_version alone.
    - ``certificate_bytes``: size of the server's Certificate message,
      4-byte handshake header included.
    - ``signature_scheme``: the server's, from CertificateVerify (TLS 1.3) or
      ServerKeyExchange (TLS 1.2).
    - ``session_tickets``: NewSessionTicket messages the server sent.
    - ``chain_verification``: OpenSSL's own chain verification, timed
      (``None`` unless native hooks recorded the handshake).

    The DER and OCSP bytes are left out of ``repr()``.
    """

    protocol_version: str | None = None
    cipher: str | None = None
    group: str | None = None
    sni: str | None = None
    alpn_offered: tuple[str, ...] = ()
    alpn_selected: str | None = None
    resumption_offered: bool = False
    resumed: bool = False
    hello_retry: bool = False
    hello_retry_group: str | None = None
    key_share_groups_offered: tuple[str, ...] = ()
    supported_groups_offered: tuple[str, ...] = ()
    versions_offered: tuple[str, ...] = ()
    ocsp_requested: bool = False
    ocsp_stapled: bool = False
    ocsp_response: bytes | None = field(default=None, repr=False)
    client_certificate_requested: bool = False
    client_certificate_sent: bool = False
    certificate_count: int = 0
    certificate_bytes: int = 0
    certificates_der: tuple[bytes, ...] = field(default=(), repr=False)
    client_certificates_der: tuple[bytes, ...] = field(default=(), repr=False)
    signature_scheme: str | None = None
    session_tickets: int = 0
    alerts: tuple[AlertFact, ...] = ()
    parse_errors: tuple[str, ...] = ()
    chain_verification: ChainVerification | None = None

    @property
    def certificates(self) -> tuple[CertificateInfo, ...]:
        """The server chain, parsed on access (cached per DER, see ``certificate_info``)."""
        return tuple(certificate_info(der) for der in self.certificates_der)

    @property
    def client_certificates(self) -> tuple[CertificateInfo, ...]:
        """The client chain, parsed on access."""
        return tuple(certificate_info(der) for der in self.client_certificates_der)


@dataclass(slots=True)
class _Seen:
    """Mutable scratch state while walking one connection's messages."""

    client_hello: _wire.ClientHello | None = None
    server_hello: _wire.ServerHello | None = None
    retry: _wire.ServerHello | None = None
    encrypted_extensions: _wire.EncryptedExtensions | None = None
    server_certificate: _wire.Certificate | None = None
    certificate_bytes: int = 0
    client_certificate: _wire.Certificate | None = None
    key_exchange: _wire.ServerKeyExchange | None = None
    ocsp_response: bytes | None = field(default=None, repr=False)
    certificate_requested: bool = False
    signature_scheme: int | None = None
    session_tickets: int = 0
    finished: list[Sender] = field(default_factory=list)
    alerts: list[AlertFact] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def version(self) -> int | None:
        hello = self.server_hello or self.retry
        return None if hello is None else hello.version


def build_facts(
    messages: Iterable[tuple[str, int, int, bytes]], *, side: Literal["client", "server"]
) -> HandshakeFacts:
    """Build the facts of one handshake from its recorded messages; never raises.

    Args:
        messages: ``(direction, content_type, msg_type, data)`` in callback order.
        side: which end recorded them; ``"read"`` on the client is the server's.

    Returns:
        The facts; unparseable messages are listed in ``parse_errors``.
    """
    seen = _Seen()
    for message in messages:
        try:
            _feed(seen, message, side)
        except ParseError as exc:
            seen.errors.append(str(exc))
    return _facts(seen)


def facts_of(events: Sequence[RawEvent], side: Literal["client", "server"]) -> HandshakeFacts:
    """:func:`build_facts` of a handshake's raw events, with its chain verification."""
    facts = build_facts([(e[2], e[3], e[4], e[5]) for e in events if e[3] >= 0], side=side)
    chain = chain_verification(events)
    return facts if chain is None else replace(facts, chain_verification=chain)


_CHAIN_HEAD: Final = struct.Struct("<iiii")  # ok, error, depth, chain length


def chain_verification(events: Sequence[RawEvent]) -> ChainVerification | None:
    """The first chain verification among ``events`` (CHAIN_START, CHAIN_END), or None."""
    start = next((e for e in events if e[3] == CHAIN_START), None)
    if start is None:
        return None
    end = next((e for e in events if e[3] == CHAIN_END and e[0] >= start[0]), None)
    if end is None or len(end[5]) < _CHAIN_HEAD.size:
        return None
    data = bytes(end[5])
    ok, error, depth, length = _CHAIN_HEAD.unpack_from(data)
    text = data[_CHAIN_HEAD.size :].decode("ascii", "replace")
    cpu = end[1] - start[1] if start[1] >= 0 and end[1] >= 0 else None
    return ChainVerification(
        start_ns=start[0],
        end_ns=end[0],
        cpu_ns=cpu,
        ok=ok > 0,
        error=error,
        message=text or None,
        depth=depth,
        chain_length=length,
    )


def _feed(seen: _Seen, message: tuple[str, int, int, bytes], side: str) -> None:
    direction, content_type, _msg_type, data = message
    if content_type not in (ALERT, HANDSHAKE):
        return
    if direction not in ("read", "write"):
        raise ParseError(f"unknown direction {direction!r}")
    sender: Sender = "client" if (direction == "write") == (side == "client") else "server"
    if content_type == ALERT:
        alert = _wire.parse_alert(bytes(data))
        level, description = alert_level_name(alert.level), alert_name(alert.description)
        seen.alerts.append(AlertFact(sender=sender, level=level, description=description))
        return
    msg_type, body = _wire.split_handshake(bytes(data))
    if _SENT_BY.get(msg_type, sender) != sender:
        raise ParseError(f"{handshake_type_name(msg_type)}: sent by the {sender}")
    try:
        _HANDLERS.get(msg_type, _ignore)(seen, sender, body)
    except ParseError as exc:
        name, text = handshake_type_name(msg_type), str(exc)
        named = text.startswith((f"{name}:", f"{name} "))
        raise ParseError(text if named else f"{name}: {text}") from None


def _ignore(seen: _Seen, sender: Sender, body: bytes) -> None:
    """Messages that carry no facts (server_hello_done, key_update, ...)."""


def _on_client_hello(seen: _Seen, sender: Sender, body: bytes) -> None:
    hello = _wire.parse_client_hello(body)
    if seen.client_hello is None:
        seen.client_hello = hello


def _on_server_hello(seen: _Seen, sender: Sender, body: bytes) -> None:
    hello = _wire.parse_server_hello(body)
    if hello.hello_retry:
        seen.retry = seen.retry or hello
    elif seen.server_hello is None:
        seen.server_hello = hello


def _on_encrypted_extensions(seen: _Seen, sender: Sender, body: bytes) -> None:
    extensions = _wire.parse_encrypted_extensions(body)
    seen.encrypted_extensions = seen.encrypted_extensions or extensions


def _on_certificate(seen: _Seen, sender: Sender, body: bytes) -> None:
    version = seen.version()
    if version is None:  # no ServerHello seen: try the TLS 1.3 layout first
        try:
            certificate = _wire.parse_certificate(body, tls13=True)
        except ParseError:
            certificate = _wire.parse_certificate(body, tls13=False)
    else:
        certificate = _wire.parse_certificate(body, tls13=version == TLS1_3)
    if sender == "client":
        seen.client_certificate = seen.client_certificate or certificate
    elif seen.server_certificate is None:
        seen.server_certificate, seen.certificate_bytes = certificate, len(body) + 4


def _on_certificate_status(seen: _Seen, sender: Sender, body: bytes) -> None:
    response = _wire.parse_certificate_status(body)
    seen.ocsp_response = seen.ocsp_response or response


def _on_server_key_exchange(seen: _Seen, sender: Sender, body: bytes) -> None:
    hello = seen.server_hello
    if hello is None or "_ECDHE_" not in cipher_name(hello.cipher_suite):
        return
    exchange = _wire.parse_server_key_exchange(body, tls12=hello.version >= TLS1_2)
    seen.key_exchange = seen.key_exchange or exchange


def _on_certificate_request(seen: _Seen, sender: Sender, body: bytes) -> None:
    _wire.parse_certificate_request(body, tls13=seen.version() == TLS1_3)
    seen.certificate_requested = True


def _on_certificate_verify(seen: _Seen, sender: Sender, body: bytes) -> None:
    scheme = _wire.parse_certificate_verify(body)
    if sender == "server" and seen.signature_scheme is None:
        seen.signature_scheme = scheme


def _on_finished(seen: _Seen, sender: Sender, body: bytes) -> None:
    seen.finished.append(sender)


def _on_new_session_ticket(seen: _Seen, sender: Sender, body: bytes) -> None:
    seen.session_tickets += 1


# Messages only one end may send; the other end's copy means a mislabelled side.
_SENT_BY: Final[dict[int, Sender]] = {
    HandshakeType.CLIENT_HELLO: "client",
    HandshakeType.SERVER_HELLO: "server",
    HandshakeType.NEW_SESSION_TICKET: "server",
    HandshakeType.ENCRYPTED_EXTENSIONS: "server",
    HandshakeType.SERVER_KEY_EXCHANGE: "server",
    HandshakeType.CERTIFICATE_REQUEST: "server",
    HandshakeType.SERVER_HELLO_DONE: "server",
    HandshakeType.CLIENT_KEY_EXCHANGE: "client",
    HandshakeType.CERTIFICATE_STATUS: "server",
}

_HANDLERS: Final[dict[int, Callable[[_Seen, Sender, bytes], None]]] = {
    HandshakeType.CLIENT_HELLO: _on_client_hello,
    HandshakeType.SERVER_HELLO: _on_server_hello,
    HandshakeType.NEW_SESSION_TICKET: _on_new_session_ticket,
    HandshakeType.ENCRYPTED_EXTENSIONS: _on_encrypted_extensions,
    HandshakeType.CERTIFICATE: _on_certificate,
    HandshakeType.SERVER_KEY_EXCHANGE: _on_server_key_exchange,
    HandshakeType.CERTIFICATE_REQUEST: _on_certificate_request,
    HandshakeType.CERTIFICATE_VERIFY: _on_certificate_verify,
    HandshakeType.FINISHED: _on_finished,
    HandshakeType.CERTIFICATE_STATUS: _on_certificate_status,
}


_NO_HELLO: Final = _wire.ClientHello(
    legacy_version=0,
    random=b"",
    session_id=b"",
    cipher_suites=(),
    extensions=(),
    server_name=None,
    alpn=(),
    supported_versions=(),
    supported_groups=(),
    key_share_groups=(),
    signature_algorithms=(),
    psk_offered=False,
    session_ticket=None,
    status_request=False,
    early_data=False,
)


def _facts(seen: _Seen) -> HandshakeFacts:
    hello = seen.client_hello or _NO_HELLO
    final = seen.server_hello or seen.retry
    resumed = _resumed(seen)
    ocsp = _ocsp_response(seen)
    chain = _ders(seen.server_certificate)
    return HandshakeFacts(
        protocol_version=_name(None if final is None else final.version, version_name),
        cipher=_name(None if final is None else final.cipher_suite, cipher_name),
        group=_name(_group(seen), group_name),
        sni=hello.server_name,
        alpn_offered=hello.alpn,
        alpn_selected=_alpn_selected(seen),
        resumption_offered=resumed or hello.psk_offered or bool(hello.session_ticket),
        resumed=resumed,
        hello_retry=seen.retry is not None,
        hello_retry_group=_name(_retry_group(seen), group_name),
        key_share_groups_offered=_names(hello.key_share_groups, group_name),
        supported_groups_offered=_names(hello.supported_groups, group_name),
        versions_offered=_names(_versions(hello), version_name),
        ocsp_requested=hello.status_request,
        ocsp_stapled=ocsp is not None,
        ocsp_response=ocsp,
        client_certificate_requested=seen.certificate_requested,
        client_certificate_sent=bool(_ders(seen.client_certificate)),
        certificate_count=len(chain),
        certificate_bytes=seen.certificate_bytes,
        certificates_der=chain,
        client_certificates_der=_ders(seen.client_certificate),
        signature_scheme=_name(_signature_scheme(seen), signature_scheme_name),
        session_tickets=seen.session_tickets,
        alerts=tuple(seen.alerts),
        parse_errors=tuple(seen.errors),
    )


def _name(value: int | None, namer: Callable[[int], str]) -> str | None:
    return None if value is None else namer(value)


def _names(values: tuple[int, ...], namer: Callable[[int], str]) -> tuple[str, ...]:
    return tuple(namer(v) for v in values)


def _versions(hello: _wire.ClientHello) -> tuple[int, ...]:
    if hello.supported_versions or not hello.legacy_version:
        return hello.supported_versions
    return (hello.legacy_version,)


def _ders(certificate: _wire.Certificate | None) -> tuple[bytes, ...]:
    return () if certificate is None else certificate.ders


def _group(seen: _Seen) -> int | None:
    if seen.version() == TLS1_3:
        return None if seen.server_hello is None else seen.server_hello.key_share_group
    return None if seen.key_exchange is None else seen.key_exchange.group


def _retry_group(seen: _Seen) -> int | None:
    return None if seen.retry is None else seen.retry.key_share_group


def _alpn_selected(seen: _Seen) -> str | None:
    if seen.encrypted_extensions is not None:
        return seen.encrypted_extensions.alpn
    return None if seen.server_hello is None else seen.server_hello.alpn


def _resumed(seen: _Seen) -> bool:
    hello, server = seen.client_hello, seen.server_hello
    if server is None:
        return False
    if server.version == TLS1_3:
        return server.psk_selected
    if hello is not None and server.session_id and server.session_id == hello.session_id:
        return True
    return seen.server_certificate is None and seen.finished[:1] == ["server"]


def _ocsp_response(seen: _Seen) -> bytes | None:
    if seen.ocsp_response is not None:
        return seen.ocsp_response
    chain = seen.server_certificate
    return chain.entries[0].ocsp_response if chain and chain.entries else None


def _signature_scheme(seen: _Seen) -> int | None:
    if seen.signature_scheme is not None:
        return seen.signature_scheme
    return None if seen.key_exchange is None else seen.key_exchange.signature_scheme
