"""Tests for build_facts over real captured handshakes, and for certificate_info."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from tlstiming._analysis.certs import CertificateInfo, certificate_info
from tlstiming._analysis.facts import AlertFact, HandshakeFacts, build_facts

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(path.stem for path in DATA.glob("*.json"))
Message = tuple[str, int, int, bytes]


def load(name: str) -> tuple[list[Message], Literal["client", "server"], dict[str, Any]]:
    document = json.loads((DATA / f"{name}.json").read_text())
    messages = [(d, c, m, bytes.fromhex(h)) for d, c, m, h in document["messages"]]
    return messages, document["side"], document["expect"]


def comparable(value: object) -> object:
    """Facts values in the JSON form the captures' ``expect`` uses."""
    if isinstance(value, tuple):
        return [comparable(item) for item in value]
    if isinstance(value, AlertFact):
        return [value.sender, value.level, value.description]
    return value


def facts_of(name: str) -> HandshakeFacts:
    messages, side, _expect = load(name)
    return build_facts(messages, side=side)


def test_captures_exist() -> None:
    assert len(CAPTURES) >= 20


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_handshake_facts(name: str) -> None:
    messages, side, expect = load(name)
    facts = build_facts(messages, side=side)
    actual = {key: comparable(getattr(facts, key)) for key in expect}
    assert actual == expect


@pytest.mark.parametrize("name", CAPTURES)
def test_captured_handshake_invariants(name: str) -> None:
    facts = facts_of(name)
    assert len(facts.certificates_der) == facts.certificate_count
    assert facts.client_certificate_sent == bool(facts.client_certificates_der)
    if facts.certificate_count:
        assert facts.certificate_bytes > sum(len(der) for der in facts.certificates_der)
    assert facts.ocsp_stapled == (facts.ocsp_response is not None)


@pytest.mark.parametrize("name", CAPTURES)
def test_the_other_end_sees_the_same_facts(name: str) -> None:
    messages, side, _expect = load(name)
    swap = {"read": "write", "write": "read"}
    mirrored = [(swap[d], c, m, data) for d, c, m, data in messages]
    other: Literal["client", "server"] = "server" if side == "client" else "client"
    assert build_facts(mirrored, side=other) == build_facts(messages, side=side)


def test_mutual_tls_client_chain() -> None:
    facts = facts_of("tls13_mtls")
    # The client's trust store holds the CA, so OpenSSL appends the root to its chain.
    client, root = facts.client_certificates
    assert client.parse_error is None
    assert client.issuer == root.subject
    assert root.self_signed
    assert facts.certificates[0].subject != client.subject


def test_stapled_ocsp_response_is_for_the_leaf() -> None:
    for name in ("openssl_ocsp_tls13", "openssl_ocsp_tls12"):
        facts = facts_of(name)
        assert facts.ocsp_response is not None
        response = ocsp.load_der_ocsp_response(facts.ocsp_response)
        leaf = x509.load_der_x509_certificate(facts.certificates_der[0])
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.serial_number == leaf.serial_number


# --- hand-built message lists ------------------------------------------------------


def vec(len_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(len_size, "big") + data


def ext(ext_type: int, data: bytes = b"") -> bytes:
    return ext_type.to_bytes(2, "big") + vec(2, data)


def hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + vec(3, body)


def hello(*extensions: bytes, session_id: bytes = b"", suite: bytes = b"\x13\x02") -> bytes:
    """A hello body; the client and server layouts agree up to the cipher suite(s)."""
    head = b"\x03\x03" + bytes(32) + vec(1, session_id)
    return head + suite + b"\x00" + vec(2, b"".join(extensions))


CLIENT_HELLO = hs(1, hello(ext(5, b"\x01\x00\x00\x00\x00"), suite=vec(2, b"\xc0\x2f") + b"\x01"))


def test_tls12_certificate_status_staples_ocsp() -> None:
    messages: list[Message] = [
        ("write", 22, 1, CLIENT_HELLO),
        ("read", 22, 2, hs(2, hello(ext(5), suite=b"\xc0\x2f"))),
        ("read", 22, 11, hs(11, vec(3, vec(3, b"leaf")))),
        ("read", 22, 22, hs(22, b"\x01" + vec(3, b"OCSP"))),
    ]
    facts = build_facts(messages, side="client")
    assert (facts.protocol_version, facts.cipher) == (
        "1.2",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    )
    assert (facts.ocsp_requested, facts.ocsp_stapled, facts.ocsp_response) == (True, True, b"OCSP")
    assert facts.certificate_bytes == 4 + 3 + 3 + 4


def test_tls13_certificate_entry_staples_ocsp() -> None:
    entry = vec(3, b"leaf") + vec(2, ext(5, b"\x01" + vec(3, b"OCSP")))
    messages: list[Message] = [
        ("read", 22, 1, CLIENT_HELLO),
        ("write", 22, 2, hs(2, hello(ext(43, b"\x03\x04"), ext(51, b"\x00\x1d" + vec(2, b"k"))))),
        ("write", 22, 11, hs(11, vec(1, b"") + vec(3, entry))),
    ]
    facts = build_facts(messages, side="server")
    assert (facts.protocol_version, facts.group, facts.ocsp_response) == ("1.3", "x25519", b"OCSP")
    assert facts.certificates_der == (b"leaf",)


def test_parse_errors_are_collected_not_raised() -> None:
    messages, side, _expect = load("tls13_full")
    broken = [m if m[2] != 11 or m[1] != 22 else (m[0], 22, 11, m[3][:-1]) for m in messages]
    facts = build_facts([*broken, ("sideways", 22, 1, b""), ("read", 21, 0, b"\x02")], side=side)
    assert len(facts.parse_errors) == 3
    assert facts.parse_errors[0].startswith("handshake")
    assert "sideways" in facts.parse_errors[1]
    assert facts.certificate_count == 0
    assert facts.cipher == "TLS_AES_256_GCM_SHA384"


def test_bad_certificate_body_names_the_message() -> None:
    messages: list[Message] = [("read", 22, 11, hs(11, vec(3, vec(3, b""))))]
    (error,) = build_facts(messages, side="client").parse_errors
    assert error == "certificate cert_data: length 0 below minimum 1"


def test_a_message_from_the_wrong_end_is_an_error() -> None:
    (error,) = build_facts([("read", 22, 1, CLIENT_HELLO)], side="client").parse_errors
    assert error == "client_hello: sent by the server"


def test_no_messages_means_no_facts() -> None:
    assert build_facts([], side="client") == HandshakeFacts()
    ignored = [("read", 256, 22, b"\x16\x03\x03\x00\x01"), ("write", 20, 257, b"\x01")]
    assert build_facts(ignored, side="client") == HandshakeFacts()


def test_tls12_resumption_by_flow_without_client_hello() -> None:
    messages: list[Message] = [
        ("read", 22, 2, hs(2, hello(session_id=b"s" * 32, suite=b"\xc0\x2f"))),
        ("read", 22, 20, hs(20, bytes(12))),
        ("write", 22, 20, hs(20, bytes(12))),
    ]
    assert build_facts(messages, side="client").resumed


# --- certificate_info -----------------------------------------------------------------


def test_certificate_info_of_an_ec_leaf_and_its_intermediate() -> None:
    leaf, intermediate = facts_of("tls13_chain").certificates
    assert (leaf.key_type, leaf.key_size, leaf.curve) == ("EC", 256, "secp256r1")
    assert leaf.signature_algorithm == "ecdsa-with-SHA256"
    assert leaf.issuer == intermediate.subject
    assert not leaf.self_signed
    assert not intermediate.self_signed
    assert leaf.not_before.tzinfo is not None
    assert leaf.not_before < leaf.not_after
    assert leaf.parse_error is None
    assert leaf.size == len(facts_of("tls13_chain").certificates_der[0])


def test_certificate_info_of_rsa_and_a_root() -> None:
    (leaf,) = facts_of("tls12_rsa").certificates
    assert (leaf.key_type, leaf.key_size, leaf.curve) == ("RSA", 2048, None)
    assert leaf.signature_algorithm == "sha256WithRSAEncryption"
    root = facts_of("tls13_mtls").certificates[1]
    assert root.self_signed


def test_certificate_info_never_raises() -> None:
    info = certificate_info(b"\x30\x03\x02\x01\x00")
    assert info.parse_error is not None
    assert (info.key_type, info.size) == ("unknown", 5)
    assert len(info.sha256) == 64


def test_certificate_info_to_dict_is_json_ready() -> None:
    (leaf,) = facts_of("tls13_full").certificates
    as_dict = leaf.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert set(as_dict) == {field.name for field in dataclasses.fields(CertificateInfo)}
    assert str(as_dict["not_after"]).endswith("+00:00")


def test_certificate_info_is_cached_per_der() -> None:
    facts = facts_of("tls13_full")
    assert facts.certificates[0] is facts.certificates[0]
