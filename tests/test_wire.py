"""Tests for the sans-IO handshake parser and the name tables."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tlstiming._wire import messages as _wire
from tlstiming._wire import names as _names
from tlstiming.errors import ParseError

DATA = Path(__file__).parent / "data"


# --- builders for hand-made messages -----------------------------------------------


def vec(len_size: int, data: bytes) -> bytes:
    """A TLS vector: big-endian length of ``len_size`` bytes, then the data."""
    return len(data).to_bytes(len_size, "big") + data


def u16s(*values: int) -> bytes:
    return struct.pack(f">{len(values)}H", *values)


def ext(ext_type: int, data: bytes = b"") -> bytes:
    return ext_type.to_bytes(2, "big") + vec(2, data)


def client_hello(*extensions: bytes, session_id: bytes = b"") -> bytes:
    return (
        b"\x03\x03"
        + bytes(32)
        + vec(1, session_id)
        + vec(2, u16s(0x1301, 0x1302))
        + vec(1, b"\x00")
        + vec(2, b"".join(extensions))
    )


def server_hello(*extensions: bytes, random: bytes = bytes(32), suite: int = 0x1302) -> bytes:
    head = b"\x03\x03" + random + vec(1, b"") + u16s(suite) + b"\x00"
    return head + vec(2, b"".join(extensions))


def ocsp_status(response: bytes) -> bytes:
    return b"\x01" + vec(3, response)


def alpn(*names: bytes) -> bytes:
    return ext(16, vec(2, b"".join(vec(1, name) for name in names)))


def sni(host: bytes) -> bytes:
    return ext(0, vec(2, b"\x00" + vec(2, host)))


def captured(name: str, msg_type: int) -> bytes:
    """The body of the first handshake message of ``msg_type`` in a capture."""
    document = json.loads((DATA / f"{name}.json").read_text())
    for _direction, content_type, kind, data in document["messages"]:
        if content_type == 22 and kind == msg_type:
            return _wire.split_handshake(bytes.fromhex(data))[1]
    raise LookupError(msg_type)


# --- framing ------------------------------------------------------------------------


def test_split_handshake_returns_type_and_body() -> None:
    assert _wire.split_handshake(b"\x14\x00\x00\x03abc") == (20, b"abc")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x14\x00\x00", b"\x14\x00\x00\x04abc", b"\x14\x00\x00\x02abc"],
    ids=["empty", "short-header", "truncated-body", "trailing-bytes"],
)
def test_split_handshake_rejects_bad_framing(data: bytes) -> None:
    with pytest.raises(ParseError):
        _wire.split_handshake(data)


def test_parse_alert() -> None:
    assert _wire.parse_alert(b"\x02\x30") == _wire.Alert(level=2, description=48)
    with pytest.raises(ParseError):
        _wire.parse_alert(b"\x02")


def test_hello_retry_random_is_the_rfc_constant() -> None:
    assert hashlib.sha256(b"HelloRetryRequest").digest() == _names.HELLO_RETRY_RANDOM


# --- ClientHello --------------------------------------------------------------------


def test_client_hello_from_a_real_capture() -> None:
    hello = _wire.parse_client_hello(captured("tls13_alpn", 1))
    assert hello.server_name == "localhost"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.supported_versions == (0x0304, 0x0303)
    assert hello.key_share_groups == (0x001D,)
    assert 0x0017 in hello.supported_groups
    assert 0x0804 in hello.signature_algorithms
    assert len(hello.session_id) == 32  # TLS 1.3 middlebox compatibility mode
    assert not hello.psk_offered
    assert 51 in hello.extensions


def test_client_hello_without_sni_or_alpn() -> None:
    hello = _wire.parse_client_hello(client_hello(ext(43, vec(1, u16s(0x0304)))))
    assert hello.server_name is None
    assert hello.alpn == ()
    assert hello.supported_versions == (0x0304,)
    assert hello.session_ticket is None


def test_client_hello_without_extension_block() -> None:
    body = client_hello()[: -len(vec(2, b""))]
    assert _wire.parse_client_hello(body).extensions == ()


def test_client_hello_flags() -> None:
    body = client_hello(sni(b"example.test"), ext(5, b"\x01\x00\x00\x00\x00"), ext(35, b"tkt"))
    hello = _wire.parse_client_hello(body)
    assert (hello.server_name, hello.status_request, hello.session_ticket) == (
        "example.test",
        True,
        b"tkt",
    )


@pytest.mark.parametrize(
    "extension",
    [
        ext(10, vec(2, b"\x00\x1d\x00")),  # odd-length group list
        ext(10, vec(2, b"")),  # empty group list (minimum 2)
        ext(16, vec(2, vec(1, b""))),  # empty ALPN protocol name
        ext(16, vec(2, vec(1, b"h2")) + b"x"),  # trailing byte in the extension
        ext(0, vec(2, b"\x00" + vec(2, b""))),  # empty host name
        ext(51, vec(2, u16s(29) + vec(2, b""))),  # empty key share
        ext(43, vec(1, b"\x03\x04\x03")),  # odd supported_versions
        ext(0, b"") + ext(0, b""),  # duplicate extension
    ],
    ids=["odd-groups", "empty-groups", "empty-alpn", "alpn-trailing", "empty-host", "empty-share",
         "odd-versions", "duplicate"],
)  # fmt: skip
def test_client_hello_rejects_malformed_extensions(extension: bytes) -> None:
    with pytest.raises(ParseError):
        _wire.parse_client_hello(client_hello(extension))


def test_client_hello_rejects_trailing_bytes() -> None:
    with pytest.raises(ParseError, match="trailing"):
        _wire.parse_client_hello(client_hello() + b"\x00")


# --- ServerHello / HelloRetryRequest / EncryptedExtensions ------------------------


def test_server_hello_from_a_real_capture() -> None:
    hello = _wire.parse_server_hello(captured("tls13_full", 2))
    assert (hello.version, hello.legacy_version, hello.cipher_suite) == (0x0304, 0x0303, 0x1302)
    assert hello.key_share_group == 0x001D
    assert not hello.hello_retry


def test_hello_retry_request_with_a_group() -> None:
    body = server_hello(ext(43, u16s(0x0304)), ext(51, u16s(24)), random=_names.HELLO_RETRY_RANDOM)
    hello = _wire.parse_server_hello(body)
    assert hello.hello_retry
    assert hello.key_share_group == 24


def test_tls12_server_hello_with_alpn_and_no_extensions() -> None:
    hello = _wire.parse_server_hello(server_hello(alpn(b"h2"), suite=0xC02F))
    assert (hello.version, hello.alpn, hello.selected_version) == (0x0303, "h2", None)
    bare = server_hello()[:-2]
    assert _wire.parse_server_hello(bare).extensions == ()


def _server_hellos() -> list[bytes]:
    """Every ServerHello (HelloRetryRequests too) in the captures, header included."""
    found = []
    for path in sorted(DATA.glob("*.json")):
        for _direction, content_type, kind, data in json.loads(path.read_text())["messages"]:
            if content_type == 22 and kind == 2:
                found.append(bytes.fromhex(data))
    return found


SERVER_HELLOS = [
    *_server_hellos(),
    b"\x02\x00\x00\x00" + server_hello(ext(43, u16s(0x0304)), random=_names.HELLO_RETRY_RANDOM),
    b"\x02\x00\x00\x00" + server_hello(alpn(b"h2"), suite=0xC02F),
]


@pytest.mark.parametrize("message", SERVER_HELLOS)
def test_sniffing_a_server_hello_agrees_with_parsing_it(message: bytes) -> None:
    """The timeline's cheap read and the parser give one answer (the header's length aside)."""
    hello = _wire.parse_server_hello(message[4:])
    tls13 = hello.hello_retry or hello.version == _names.TLS1_3
    assert _wire.sniff_server_hello(message) == (hello.hello_retry, tls13)


def test_the_captures_hold_both_kinds_of_server_hello() -> None:
    kinds = {_wire.sniff_server_hello(m) for m in _server_hellos()}
    assert {(True, True), (False, True), (False, False)} <= kinds


@pytest.mark.parametrize(
    "extension",
    [alpn(b"h2", b"http/1.1"), ext(43, b"\x03"), ext(51, u16s(29) + b"\x00")],
    ids=["two-alpn", "short-version", "truncated-share"],
)
def test_server_hello_rejects_malformed_extensions(extension: bytes) -> None:
    with pytest.raises(ParseError):
        _wire.parse_server_hello(server_hello(extension))


def test_encrypted_extensions() -> None:
    parsed = _wire.parse_encrypted_extensions(vec(2, alpn(b"http/1.1") + ext(42)))
    assert (parsed.alpn, parsed.early_data) == ("http/1.1", True)
    assert _wire.parse_encrypted_extensions(b"\x00\x00").extensions == ()
    with pytest.raises(ParseError):
        _wire.parse_encrypted_extensions(b"")


# --- Certificate, CertificateStatus ---------------------------------------------------


def certificate13(*entries: tuple[bytes, bytes], context: bytes = b"") -> bytes:
    body = b"".join(vec(3, der) + vec(2, extensions) for der, extensions in entries)
    return vec(1, context) + vec(3, body)


def test_tls13_certificate_with_stapled_ocsp_on_the_leaf() -> None:
    body = certificate13((b"leaf", ext(5, ocsp_status(b"OCSP"))), (b"ca", b""))
    parsed = _wire.parse_certificate(body, tls13=True)
    assert parsed.ders == (b"leaf", b"ca")
    assert parsed.entries[0].ocsp_response == b"OCSP"
    assert parsed.entries[0].extensions == (5,)
    assert parsed.entries[1].ocsp_response is None


def test_tls12_certificate_is_a_plain_list() -> None:
    body = vec(3, vec(3, b"leaf") + vec(3, b"ca"))
    assert _wire.parse_certificate(body, tls13=False).ders == (b"leaf", b"ca")
    assert _wire.parse_certificate(vec(3, b""), tls13=False).entries == ()


def test_real_certificate_messages() -> None:
    chain = _wire.parse_certificate(captured("tls13_chain", 11), tls13=True)
    assert len(chain.ders) == 2
    assert all(der[0] == 0x30 for der in chain.ders)  # DER SEQUENCE
    stapled = _wire.parse_certificate(captured("openssl_ocsp_tls13", 11), tls13=True)
    assert stapled.entries[0].ocsp_response is not None


@pytest.mark.parametrize(
    ("body", "tls13"),
    [
        (vec(3, vec(3, b"")), False),  # empty cert_data
        (vec(3, vec(3, b"leaf")) + b"x", False),  # trailing bytes
        (vec(1, b"") + vec(3, vec(3, b"leaf")), True),  # entry without extensions
        (certificate13((b"leaf", ext(5, b"\x02" + vec(3, b"x")))), True),  # status type 2
        (certificate13((b"leaf", ext(5, ocsp_status(b"")))), True),  # empty OCSP response
        (certificate13((b"leaf", ext(18) + ext(18))), True),  # duplicate entry extension
    ],
    ids=["empty-cert", "trailing", "no-ext-block", "status-type", "empty-ocsp", "duplicate"],
)
def test_certificate_rejects_malformed(body: bytes, tls13: bool) -> None:
    with pytest.raises(ParseError):
        _wire.parse_certificate(body, tls13=tls13)


def test_tls12_certificate_status() -> None:
    assert _wire.parse_certificate_status(ocsp_status(b"\x30\x03\x0a\x01\x00")) == (
        b"\x30\x03\x0a\x01\x00"
    )
    with pytest.raises(ParseError):
        _wire.parse_certificate_status(ocsp_status(b"x") + b"x")
    real = _wire.parse_certificate_status(captured("openssl_ocsp_tls12", 22))
    assert real[0] == 0x30


# --- key exchange, CertificateRequest, CertificateVerify ----------------------------


def test_server_key_exchange_named_curve() -> None:
    body = b"\x03" + u16s(29) + vec(1, bytes(32)) + u16s(0x0403) + vec(2, b"sig")
    assert _wire.parse_server_key_exchange(body) == _wire.ServerKeyExchange(
        group=29, signature_scheme=0x0403
    )
    legacy = b"\x03" + u16s(23) + vec(1, b"p") + vec(2, b"sig")
    assert _wire.parse_server_key_exchange(legacy, tls12=False) == _wire.ServerKeyExchange(
        group=23, signature_scheme=None
    )
    assert _wire.parse_server_key_exchange(b"\x01explicit curve") is None
    with pytest.raises(ParseError):
        _wire.parse_server_key_exchange(body[:-1])


def test_real_server_key_exchange() -> None:
    parsed = _wire.parse_server_key_exchange(captured("tls12_rsa", 12))
    assert parsed == _wire.ServerKeyExchange(group=29, signature_scheme=0x0804)


def test_certificate_request_tls13_and_tls12() -> None:
    tls13 = vec(1, b"") + vec(2, ext(13, vec(2, u16s(0x0804, 0x0403))))
    parsed = _wire.parse_certificate_request(tls13, tls13=True)
    assert parsed.signature_algorithms == (0x0804, 0x0403)
    real = _wire.parse_certificate_request(captured("tls13_mtls", 13), tls13=True)
    assert real.certificate_authorities == 0  # CPython never sets a client CA list
    tls12 = vec(1, b"\x01\x40") + vec(2, u16s(0x0401)) + vec(2, vec(2, b"dn1") + vec(2, b"dn2"))
    assert _wire.parse_certificate_request(tls12, tls13=False).certificate_authorities == 2
    with pytest.raises(ParseError):
        _wire.parse_certificate_request(vec(1, b"") + u16s(0x0401), tls13=False)


def test_certificate_verify() -> None:
    assert _wire.parse_certificate_verify(u16s(0x0807) + vec(2, b"s")) == 0x0807
    with pytest.raises(ParseError):
        _wire.parse_certificate_verify(u16s(0x0807) + vec(2, b""))


# --- names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "value", "name"),
    [
        (_names.handshake_type_name, 1, "client_hello"),
        (_names.handshake_type_name, 254, "message_hash"),
        (_names.handshake_type_name, 99, "unknown(0x63)"),
        (_names.alert_name, 116, "certificate_required"),
        (_names.alert_name, 120, "no_application_protocol"),
        (_names.alert_name, 200, "unknown(0xC8)"),
        (_names.alert_level_name, 2, "fatal"),
        (_names.group_name, 0x11EC, "X25519MLKEM768"),
        (_names.group_name, 0x0A0A, "grease(0x0A0A)"),
        (_names.group_name, 0x1234, "unknown(0x1234)"),
        (_names.cipher_name, 0x1302, "TLS_AES_256_GCM_SHA384"),
        (_names.cipher_name, 0x1234, "0x1234"),
        (_names.version_name, 0x0300, "SSL 3.0"),
        (_names.version_name, 0x7F1C, "unknown(0x7F1C)"),
        (_names.signature_scheme_name, 0x0804, "rsa_pss_rsae_sha256"),
        (_names.extension_name, 51, "key_share"),
    ],
)
def test_names(function: Callable[[int], str], value: int, name: str) -> None:
    assert function(value) == name


def test_grease_values() -> None:
    grease = [v for v in range(0x10000) if _names.is_grease(v)]
    assert grease == [0x0A0A + 0x1010 * i for i in range(16)]
