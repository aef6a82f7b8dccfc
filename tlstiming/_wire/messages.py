"""Parse TLS handshake messages from bytes (sans-IO, pure).

Each ``parse_*`` function takes the *body* of one handshake message (as
returned by :func:`split_handshake`) and returns a small frozen value. No
sockets, no ``ssl`` objects, no clocks. The only exception any function here
raises is :class:`~tlstiming.errors.ParseError`: truncation, a length field
running past its container, trailing bytes, a vector shorter than its RFC
minimum, or a duplicated extension.

Wire layouts follow RFC 8446 (TLS 1.3) and RFC 5246 (TLS 1.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from tlstiming._wire.names import HELLO_RETRY_RANDOM, TLS1_3
from tlstiming.errors import ParseError

__all__ = [
    "Alert",
    "Certificate",
    "CertificateEntry",
    "CertificateRequest",
    "ClientHello",
    "EncryptedExtensions",
    "ServerHello",
    "ServerKeyExchange",
    "parse_alert",
    "parse_certificate",
    "parse_certificate_request",
    "parse_certificate_status",
    "parse_certificate_verify",
    "parse_client_hello",
    "parse_encrypted_extensions",
    "parse_server_hello",
    "parse_server_key_exchange",
    "sniff_server_hello",
    "split_handshake",
]

_EXT_SERVER_NAME: Final = 0
_EXT_STATUS_REQUEST: Final = 5
_EXT_SUPPORTED_GROUPS: Final = 10
_EXT_SIGNATURE_ALGORITHMS: Final = 13
_EXT_ALPN: Final = 16
_EXT_SESSION_TICKET: Final = 35
_EXT_PRE_SHARED_KEY: Final = 41
_EXT_EARLY_DATA: Final = 42
_EXT_SUPPORTED_VERSIONS: Final = 43
_EXT_CERTIFICATE_AUTHORITIES: Final = 47
_EXT_KEY_SHARE: Final = 51
_OCSP_STATUS_TYPE: Final = 1
_NAMED_CURVE: Final = 3


class _Reader:
    """A bounds-checked cursor over a byte string; every overrun is a ParseError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, what: str) -> bytes:
        start, stop = self._pos, self._pos + n
        if stop > len(self._data):
            raise ParseError(f"{what}: need {n} bytes, {len(self._data) - start} left")
        self._pos = stop
        return self._data[start:stop]

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, len_size: int, what: str, minimum: int = 0) -> bytes:
        n = self.uint(len_size, what)
        if n < minimum:
            raise ParseError(f"{what}: length {n} below minimum {minimum}")
        return self.take(n, what)

    def rest(self) -> bytes:
        return self.take(self.remaining(), "rest")

    def end(self, what: str) -> None:
        if self._pos != len(self._data):
            raise ParseError(f"{what}: {self.remaining()} trailing bytes")


def _u16_list(data: bytes, what: str) -> tuple[int, ...]:
    if len(data) % 2:
        raise ParseError(f"{what}: odd length {len(data)}")
    return struct.unpack(f">{len(data) // 2}H", data)


def _u16_exact(data: bytes, what: str) -> int:
    if len(data) != 2:
        raise ParseError(f"{what}: expected 2 bytes, got {len(data)}")
    return int.from_bytes(data, "big")


def _decode(raw: bytes) -> str:
    return raw.decode("ascii", "backslashreplace")


def _extension_block(r: _Reader, what: str) -> dict[int, bytes]:
    """Read a mandatory ``Extension extensions<0..2^16-1>`` block."""
    block = _Reader(r.vector(2, what))
    found: dict[int, bytes] = {}
    while block.remaining():
        ext_type = block.uint(2, what)
        if ext_type in found:
            raise ParseError(f"{what}: duplicate extension {ext_type}")
        found[ext_type] = block.vector(2, what)
    return found


def _extensions(r: _Reader, what: str) -> dict[int, bytes]:
    """Read a hello's extension block, which pre-1.3 peers may omit entirely."""
    return _extension_block(r, what) if r.remaining() else {}


def split_handshake(data: bytes) -> tuple[int, bytes]:
    """Split ``msg_type(1) || length(3) || body`` into ``(msg_type, body)``.

    Args:
        data: one whole handshake message, header included.

    Returns:
        The message type and the body.

    Raises:
        ParseError: if the header is short or the length disagrees with the data.
    """
    r = _Reader(data)
    msg_type = r.uint(1, "handshake header")
    body = r.take(r.uint(3, "handshake header"), "handshake body")
    r.end("handshake message")
    return msg_type, body


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """An alert record's payload: level (1 warning, 2 fatal) and description."""

    level: int
    description: int


def parse_alert(data: bytes) -> Alert:
    """Parse the two bytes of an alert.

    Raises:
        ParseError: if ``data`` is not exactly two bytes.
    """
    if len(data) != 2:
        raise ParseError(f"alert: expected 2 bytes, got {len(data)}")
    return Alert(level=data[0], description=data[1])


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientHello:
    """The fields of a ClientHello that matter for diagnosis (RFC 8446 4.1.2).

    ``extensions`` lists the extension types in wire order. ``session_ticket``
    is the content of the session_ticket extension (``None`` when absent,
    ``b""`` when the client only signals support).
    """

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    server_name: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    supported_groups: tuple[int, ...]
    key_share_groups: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    psk_offered: bool
    session_ticket: bytes | None
    status_request: bool
    early_data: bool


def _whole_vector(data: bytes, len_size: int, what: str, minimum: int = 0) -> _Reader:
    """Read ``data`` as exactly one length-prefixed vector; return a reader over it."""
    r = _Reader(data)
    inner = r.vector(len_size, what, minimum)
    r.end(what)
    return _Reader(inner)


def _server_name(data: bytes) -> str | None:
    r = _whole_vector(data, 2, "server_name list", 1)
    host: str | None = None
    while r.remaining():
        name_type = r.uint(1, "server_name")
        name = r.vector(2, "server_name host", 1)
        if name_type == 0 and host is None:
            host = _decode(name)
    return host


def _alpn_list(data: bytes) -> tuple[str, ...]:
    r = _whole_vector(data, 2, "alpn list", 2)
    names: list[str] = []
    while r.remaining():
        names.append(_decode(r.vector(1, "alpn protocol", 1)))
    return tuple(names)


def _client_key_shares(data: bytes) -> tuple[int, ...]:
    r = _whole_vector(data, 2, "key_share list")
    groups: list[int] = []
    while r.remaining():
        groups.append(r.uint(2, "key_share group"))
        r.vector(2, "key_share key", 1)
    return tuple(groups)


def _u16s(ext: dict[int, bytes], ext_type: int, len_size: int, what: str) -> tuple[int, ...]:
    data = ext.get(ext_type)
    if data is None:
        return ()
    r = _whole_vector(data, len_size, what, 2)
    return _u16_list(r.rest(), what)


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello body (TLS 1.0 to 1.3).

    Raises:
        ParseError: on any malformed field or extension this parser reads.
    """
    r = _Reader(body)
    version = r.uint(2, "client_hello version")
    random = r.take(32, "client_hello random")
    session_id = r.vector(1, "client_hello session_id")
    suites = _u16_list(r.vector(2, "cipher_suites", 2), "cipher_suites")
    r.vector(1, "compression_methods", 1)
    ext = _extensions(r, "client_hello extensions")
    r.end("client_hello")
    sni, alpn, shares = ext.get(_EXT_SERVER_NAME), ext.get(_EXT_ALPN), ext.get(_EXT_KEY_SHARE)
    return ClientHello(
        legacy_version=version,
        random=random,
        session_id=session_id,
        cipher_suites=suites,
        extensions=tuple(ext),
        server_name=None if sni is None else _server_name(sni),
        alpn=() if alpn is None else _alpn_list(alpn),
        supported_versions=_u16s(ext, _EXT_SUPPORTED_VERSIONS, 1, "supported_versions"),
        supported_groups=_u16s(ext, _EXT_SUPPORTED_GROUPS, 2, "supported_groups"),
        key_share_groups=() if shares is None else _client_key_shares(shares),
        signature_algorithms=_u16s(ext, _EXT_SIGNATURE_ALGORITHMS, 2, "signature_algorithms"),
        psk_offered=_EXT_PRE_SHARED_KEY in ext,
        session_ticket=ext.get(_EXT_SESSION_TICKET),
        status_request=_EXT_STATUS_REQUEST in ext,
        early_data=_EXT_EARLY_DATA in ext,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHello:
    """A ServerHello or HelloRetryRequest (RFC 8446 4.1.3, 4.1.4).

    ``key_share_group`` is the group of the server's key share, or for a
    HelloRetryRequest the group the server asks the client to use.
    ``selected_version`` comes from supported_versions (``None`` before 1.3).
    """

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    extensions: tuple[int, ...]
    selected_version: int | None
    key_share_group: int | None
    psk_selected: bool
    alpn: str | None
    status_request: bool

    @property
    def hello_retry(self) -> bool:
        """Whether this is a HelloRetryRequest (its random is the RFC 8446 constant)."""
        return self.random == HELLO_RETRY_RANDOM

    @property
    def version(self) -> int:
        """The negotiated version: supported_versions if present, else legacy_version."""
        return self.legacy_version if self.selected_version is None else self.selected_version


def _single_alpn(ext: dict[int, bytes]) -> str | None:
    data = ext.get(_EXT_ALPN)
    if data is None:
        return None
    names = _alpn_list(data)
    if len(names) != 1:
        raise ParseError(f"alpn: server selected {len(names)} protocols")
    return names[0]


def _server_key_share(data: bytes | None) -> int | None:
    """Group of a ServerHello key_share; a 2-byte extension is an HRR's selected_group."""
    if data is None:
        return None
    r = _Reader(data)
    group = r.uint(2, "key_share group")
    if r.remaining():
        r.vector(2, "key_share key", 1)
        r.end("key_share")
    return group


_SELECTS_TLS13: Final = struct.pack(">HHH", _EXT_SUPPORTED_VERSIONS, 2, TLS1_3)


def sniff_server_hello(message: bytes) -> tuple[bool, bool]:
    """Tell whether a whole ServerHello message is a HelloRetryRequest, and TLS 1.3.

    What naming a handshake's phases needs, read where the fields sit: it
    never raises, and costs no parse. On a well-formed message it agrees
    with :func:`parse_server_hello` (``hello_retry``, and ``version`` 1.3 or
    a retry: a retry is TLS 1.3 only).

    Args:
        message: the ServerHello, handshake header included.

    Returns:
        ``(hello_retry, tls13)``.
    """
    hello_retry = message[6:38] == HELLO_RETRY_RANDOM
    return hello_retry, hello_retry or _SELECTS_TLS13 in message[38:]


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello body; a HelloRetryRequest parses the same way.

    Raises:
        ParseError: on any malformed field or extension this parser reads.
    """
    r = _Reader(body)
    version = r.uint(2, "server_hello version")
    random = r.take(32, "server_hello random")
    session_id = r.vector(1, "server_hello session_id")
    suite = r.uint(2, "server_hello cipher_suite")
    r.uint(1, "server_hello compression_method")
    ext = _extensions(r, "server_hello extensions")
    r.end("server_hello")
    selected = ext.get(_EXT_SUPPORTED_VERSIONS)
    return ServerHello(
        legacy_version=version,
        random=random,
        session_id=session_id,
        cipher_suite=suite,
        extensions=tuple(ext),
        selected_version=None if selected is None else _u16_exact(selected, "supported_versions"),
        key_share_group=_server_key_share(ext.get(_EXT_KEY_SHARE)),
        psk_selected=_EXT_PRE_SHARED_KEY in ext,
        alpn=_single_alpn(ext),
        status_request=_EXT_STATUS_REQUEST in ext,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedExtensions:
    """TLS 1.3 EncryptedExtensions: extension types, selected ALPN, early data accepted."""

    extensions: tuple[int, ...]
    alpn: str | None
    early_data: bool


def parse_encrypted_extensions(body: bytes) -> EncryptedExtensions:
    """Parse a TLS 1.3 EncryptedExtensions body.

    Raises:
        ParseError: if the extension block is malformed.
    """
    r = _Reader(body)
    ext = _extension_block(r, "encrypted_extensions")
    r.end("encrypted_extensions")
    return EncryptedExtensions(
        extensions=tuple(ext), alpn=_single_alpn(ext), early_data=_EXT_EARLY_DATA in ext
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateEntry:
    """One certificate as sent, with the OCSP response stapled to it (TLS 1.3 only)."""

    der: bytes
    extensions: tuple[int, ...]
    ocsp_response: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A Certificate message: the chain as sent (leaf first) and the 1.3 request context."""

    request_context: bytes
    entries: tuple[CertificateEntry, ...]

    @property
    def ders(self) -> tuple[bytes, ...]:
        """The DER of each certificate, in wire order."""
        return tuple(entry.der for entry in self.entries)


def parse_certificate_status(body: bytes) -> bytes:
    """Parse a CertificateStatus body (RFC 6066 8); also the TLS 1.3 status_request entry.

    Returns:
        The DER-encoded OCSPResponse.

    Raises:
        ParseError: if the status type is not ocsp(1) or the response is empty.
    """
    r = _Reader(body)
    status_type = r.uint(1, "certificate_status type")
    if status_type != _OCSP_STATUS_TYPE:
        raise ParseError(f"certificate_status: unsupported status_type {status_type}")
    response = r.vector(3, "certificate_status response", 1)
    r.end("certificate_status")
    return response


def _certificate_entry(r: _Reader, tls13: bool) -> CertificateEntry:
    der = r.vector(3, "certificate cert_data", 1)
    if not tls13:
        return CertificateEntry(der=der, extensions=(), ocsp_response=None)
    found = _extension_block(r, "certificate entry extensions")
    status = found.get(_EXT_STATUS_REQUEST)
    return CertificateEntry(
        der=der,
        extensions=tuple(found),
        ocsp_response=None if status is None else parse_certificate_status(status),
    )


def parse_certificate(body: bytes, *, tls13: bool) -> Certificate:
    """Parse a Certificate body.

    Args:
        body: the message body.
        tls13: True for the TLS 1.3 layout (request context and per-entry
            extensions), False for the TLS 1.2 plain list.

    Raises:
        ParseError: on truncation, an empty certificate, or trailing bytes.
    """
    r = _Reader(body)
    context = r.vector(1, "certificate request_context") if tls13 else b""
    chain = _Reader(r.vector(3, "certificate_list"))
    r.end("certificate")
    entries: list[CertificateEntry] = []
    while chain.remaining():
        entries.append(_certificate_entry(chain, tls13))
    return Certificate(request_context=context, entries=tuple(entries))


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateRequest:
    """A CertificateRequest: accepted signature schemes and how many CAs were named."""

    request_context: bytes
    signature_algorithms: tuple[int, ...]
    certificate_authorities: int


def _count_names(data: bytes) -> int:
    r = _Reader(data)
    count = 0
    while r.remaining():
        r.vector(2, "distinguished name", 1)
        count += 1
    return count


def parse_certificate_request(body: bytes, *, tls13: bool) -> CertificateRequest:
    """Parse a CertificateRequest body (RFC 8446 4.3.2 or RFC 5246 7.4.4).

    Raises:
        ParseError: on any malformed field.
    """
    r = _Reader(body)
    if tls13:
        context = r.vector(1, "certificate_request context")
        ext = _extension_block(r, "certificate_request extensions")
        r.end("certificate_request")
        cas = ext.get(_EXT_CERTIFICATE_AUTHORITIES)
        names = 0 if cas is None else _count_names(_whole_vector(cas, 2, "authorities", 3).rest())
        schemes = _u16s(ext, _EXT_SIGNATURE_ALGORITHMS, 2, "signature_algorithms")
        return CertificateRequest(
            request_context=context, signature_algorithms=schemes, certificate_authorities=names
        )
    r.vector(1, "certificate_types", 1)
    schemes = _u16_list(r.vector(2, "signature_algorithms", 2), "signature_algorithms")
    names = _count_names(r.vector(2, "certificate_authorities"))
    r.end("certificate_request")
    return CertificateRequest(
        request_context=b"", signature_algorithms=schemes, certificate_authorities=names
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerKeyExchange:
    """An ECDHE ServerKeyExchange: the named curve and the signature scheme (TLS 1.2)."""

    group: int
    signature_scheme: int | None


def parse_server_key_exchange(body: bytes, *, tls12: bool = True) -> ServerKeyExchange | None:
    """Parse an ECDHE ServerKeyExchange body (RFC 8422 5.4).

    Only call this when the negotiated suite is ECDHE: a DHE body can start with
    the same byte as an ECDHE one.

    Args:
        body: the message body.
        tls12: True when the signature is prefixed by its scheme (TLS 1.2);
            False for TLS 1.0/1.1.

    Returns:
        The group, or ``None`` for explicit curves (``curve_type`` other than 3).

    Raises:
        ParseError: on truncation or trailing bytes.
    """
    r = _Reader(body)
    if r.uint(1, "server_key_exchange curve_type") != _NAMED_CURVE:
        return None
    group = r.uint(2, "server_key_exchange group")
    r.vector(1, "server_key_exchange point", 1)
    scheme = r.uint(2, "server_key_exchange signature_scheme") if tls12 else None
    r.vector(2, "server_key_exchange signature", 1)
    r.end("server_key_exchange")
    return ServerKeyExchange(group=group, signature_scheme=scheme)


def parse_certificate_verify(body: bytes) -> int:
    """Parse a CertificateVerify body (TLS 1.2 or 1.3) and return its signature scheme.

    Raises:
        ParseError: on truncation, an empty signature, or trailing bytes.
    """
    r = _Reader(body)
    scheme = r.uint(2, "certificate_verify scheme")
    r.vector(2, "certificate_verify signature", 1)
    r.end("certificate_verify")
    return scheme
