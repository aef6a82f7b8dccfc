"""A peer's certificates can never make a span unexportable (issue #10, item 6).

``certificate_info`` reads every DER a peer sends. ``cryptography`` rejects
malformed certificates with several exception types (``ValueError``,
``InvalidVersion``, ``UnsupportedAlgorithm``, ``TypeError``...), some when
loading, some only when a property is read. Whatever the DER, the summary must
come back with a ``parse_error``, and ``span.to_dict()`` must work.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import ServeFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import GREETING, PKI, assert_exportable, connect, read_exactly

from tlstiming import HandshakeSpan, SpanRecorder, TimedSSLContext
from tlstiming._analysis.certs import CertificateInfo, certificate_info
from tlstiming._analysis.timeline import RawEvent
from tlstiming._wire.names import ENTER, EXIT
from tlstiming.spans.build import build_span
from tlstiming.testing import CA

Fields = list[bytes]

# -- just enough DER to edit a TBSCertificate -------------------------------------------


def _tlv(data: bytes, pos: int = 0) -> tuple[int, int]:
    """Return (start of the content, end) of the TLV at ``pos``."""
    size, pos = data[pos + 1], pos + 2
    if size & 0x80:
        count = size & 0x7F
        size, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    return pos, pos + size


def _children(content: bytes) -> Fields:
    out, pos = [], 0
    while pos < len(content):
        end = _tlv(content, pos)[1]
        out.append(content[pos:end])
        pos = end
    return out


def _content(tlv: bytes) -> bytes:
    start, end = _tlv(tlv)
    return tlv[start:end]


def _encode(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def _edit_tbs(der: bytes, edit: Callable[[Fields], Fields]) -> bytes:
    """Re-encode ``der`` with its TBSCertificate fields edited (the signature is kept)."""
    tbs, algorithm, signature = _children(_content(der))
    fields = edit(_children(_content(tbs)))
    return _encode(0x30, _encode(0x30, b"".join(fields)) + algorithm + signature)


def _with_version(der: bytes, version: int) -> bytes:
    """``der`` whose ``[0] EXPLICIT Version`` INTEGER holds ``version``."""
    value = version.to_bytes((version.bit_length() + 8) // 8, "big", signed=True)
    field = _encode(0xA0, _encode(0x02, value))
    return _edit_tbs(der, lambda fields: [field, *fields[1:]])


def _with_extension(der: bytes, extension: bytes, position: int) -> bytes:
    """``der`` with ``extension`` (one Extension SEQUENCE) inserted among its extensions."""

    def edit(fields: Fields) -> Fields:
        extensions = _children(_content(_content(fields[-1])))
        extensions.insert(position % (len(extensions) + 1), extension)
        block = _encode(0xA3, _encode(0x30, b"".join(extensions)))
        return [*fields[:-1], block]

    return _edit_tbs(der, edit)


def _with_field(der: bytes, index: int, replacement: bytes) -> bytes:
    return _edit_tbs(der, lambda fields: [*fields[:index], replacement, *fields[index + 1 :]])


_SUBJECT, _SPKI = 5, 6
_CN = b"\x06\x03\x55\x04\x03"


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


def _real_certificates() -> tuple[bytes, ...]:
    ec_ca, rsa_ca = CA(), CA(key_type="rsa")
    chained = ec_ca.create_child_ca().issue_cert("chained.example.test")
    leaves = (ec_ca.issue_cert("localhost", "127.0.0.1"), rsa_ca.issue_cert("rsa.example.test"))
    pems = [pem.bytes() for cert in (*leaves, chained) for pem in cert.cert_chain_pems]
    return tuple(_der(pem) for pem in [ec_ca.cert_pem.bytes(), *pems])


REAL = _real_certificates()
LEAF = REAL[1]  # EC, issued by REAL[0]

# -- a span that holds a chain -----------------------------------------------------------


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


def span_with_chain(chain: Sequence[bytes]) -> HandshakeSpan:
    """A client span whose server sent ``chain`` in a TLS 1.3 Certificate message."""
    entries = b"".join(_u24(der) + b"\x00\x00" for der in chain)
    body = b"\x00" + _u24(entries)
    events: list[RawEvent] = [
        (0, 0, "", ENTER, 0, b""),
        (10, 10, "write", 22, 1, b"\x01\x00\x00\x00"),
        (20, 20, "read", 22, 11, b"\x0b" + _u24(body)),
        (30, 30, "", EXIT, 0, b""),
    ]
    return build_span(
        events, server_side=False, end_ns=30, server_hostname=None, peer=None, exc=None
    )


def _check(der: bytes) -> CertificateInfo:
    info = certificate_info(der)
    assert (info.size, info.sha256) == (len(der), hashlib.sha256(der).hexdigest())
    assert json.loads(json.dumps(info.to_dict())) == info.to_dict()
    return info


# -- mutations of real certificates -------------------------------------------------------

_EXTENSION_OIDS = (
    "551d11",  # subjectAltName
    "551d13",  # basicConstraints
    "551d0f",  # keyUsage
    "551d0e",  # subjectKeyIdentifier
    "551d23",  # authorityKeyIdentifier
    "551d25",  # extKeyUsage
    "551d1e",  # nameConstraints
    "551d1f",  # cRLDistributionPoints
    "551d20",  # certificatePolicies
    "2b06010505070101",  # authorityInfoAccess
    "2b06010401d679020402",  # signed certificate timestamps
)


@st.composite
def garbage_extensions(draw: st.DrawFn) -> bytes:
    """An Extension with a garbage value, a known or a random OID, maybe non-DER flags."""
    oid = draw(st.sampled_from(_EXTENSION_OIDS).map(bytes.fromhex) | st.binary(max_size=12))
    critical = draw(st.sampled_from([b"", b"\x01\x01\xff", b"\x01\x01\x00"]))
    value = draw(st.binary(max_size=80))
    return _encode(0x30, _encode(0x06, oid) + critical + _encode(0x04, value))


@st.composite
def flipped(draw: st.DrawFn, der: bytes) -> bytes:
    out = bytearray(der)
    for _ in range(draw(st.integers(1, 4))):
        out[draw(st.integers(0, len(der) - 1))] ^= draw(st.integers(1, 255))
    return bytes(out)


def mutations(der: bytes) -> st.SearchStrategy[bytes]:
    """One mutation of a real certificate: flipped bytes, truncated, a bad version, garbage."""
    return st.one_of(
        flipped(der),
        st.integers(1, len(der) - 1).map(lambda n: der[:n]),
        (st.integers(-2, 300) | st.integers(-(2**70), 2**70)).map(lambda v: _with_version(der, v)),
        st.builds(_with_extension, st.just(der), garbage_extensions(), st.integers(0, 20)),
    )


MUTATED = st.sampled_from(REAL).flatmap(mutations)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(MUTATED)
def test_certificate_info_never_raises_on_mutated_certificates(der: bytes) -> None:
    _check(der)


@FUZZ
@given(st.lists(MUTATED | st.sampled_from(REAL), min_size=1, max_size=3))
def test_a_span_holding_mutated_certificates_exports(chain: list[bytes]) -> None:
    span = span_with_chain(chain)
    exported = span.to_dict()
    assert json.loads(json.dumps(exported)) == exported
    assert [c["sha256"] for c in exported["tls.server.chain"]] == [
        hashlib.sha256(der).hexdigest() for der in chain
    ]
    assert (
        span.to_dict(timeline=False)["tls.server.hash.sha256"] == exported["tls.server.hash.sha256"]
    )


# -- named cases --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 127])
def test_an_invalid_version_is_a_parse_error(version: int) -> None:
    info = _check(_with_version(LEAF, version))
    assert info.parse_error is not None
    assert info.parse_error.startswith("InvalidVersion")
    assert (info.subject, info.key_type) == ("", "unknown")


def test_an_undecodable_subject_keeps_the_other_fields() -> None:
    subject = _encode(0x30, _encode(0x31, _encode(0x30, _CN + _encode(0x0C, b"\xff\xfe"))))
    original, info = certificate_info(LEAF), _check(_with_field(LEAF, _SUBJECT, subject))
    assert info.parse_error is not None
    assert info.parse_error.startswith("subject: ")
    assert info.subject == ""
    assert (info.issuer, info.not_before, info.not_after) == (
        original.issuer,
        original.not_before,
        original.not_after,
    )
    assert (info.key_type, info.curve, info.signature_algorithm) == (
        "EC",
        "secp256r1",
        "ecdsa-with-SHA256",
    )


def test_a_malformed_key_is_a_parse_error_and_keeps_the_names() -> None:
    algorithm = _children(_content(_children(_content(_content(LEAF)))[_SPKI]))[0]
    key = _encode(0x30, algorithm + _encode(0x03, b"\x00\x04" + b"\x01" * 10))
    original, info = certificate_info(LEAF), _check(_with_field(LEAF, _SPKI, key))
    assert info.parse_error is not None
    assert info.parse_error.startswith("public_key: ")
    assert (info.key_type, info.key_size) == ("unknown", None)
    assert (info.subject, info.issuer) == (original.subject, original.issuer)


# -- end to end: a server whose leaf has an invalid version -------------------------------


@pytest.mark.usefixtures("implementation")
@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
def test_a_leaf_with_an_invalid_version_is_exported(
    pki: PKI,
    serve: ServeFactory,
    recorder: SpanRecorder,
    tmp_path: Path,
    version: ssl.TLSVersion,
) -> None:
    bad = _with_version(_der(pki.leaf.cert_chain_pems[0].bytes()), 5)
    leaf_file = tmp_path / "leaf.pem"
    leaf_file.write_text(ssl.DER_cert_to_PEM_cert(bad))
    server_ctx = TimedSSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_spans = SpanRecorder()
    server_ctx.add_sink(server_spans)
    server_ctx.maximum_version = version
    with pki.leaf.private_key_pem.tempfile() as key:
        server_ctx.load_cert_chain(leaf_file, key)
    client_ctx = TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.add_sink(recorder)
    server = serve(server_ctx)
    with connect(client_ctx, server.address) as conn:
        assert read_exactly(conn, len(GREETING)) == GREETING
    assert server.next_result().error is None
    for span in (*recorder.spans, *server_spans.spans):
        exported = assert_exportable(span)
        (leaf,) = exported["tls.server.chain"]
        assert leaf["parse_error"].startswith("InvalidVersion")
        assert leaf["sha256"] == hashlib.sha256(bad).hexdigest()
        assert exported["tls.server.hash.sha256"] == leaf["sha256"].upper()
    assert [s.side for s in (*recorder.spans, *server_spans.spans)] == ["client", "server"]
