"""``tlstiming.testing.CA``: every knob, against strict X.509 verification on loopback.

Clients verify with ``VERIFY_X509_STRICT`` and ``VERIFY_X509_PARTIAL_CHAIN``,
the flags Python 3.13's ``create_default_context()`` sets.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from tlstiming.testing import CA, Blob, LeafCert, LocalPKI, LocalTLSServer, server_context
from tlstiming.testing.ca import KeyType

DAY = datetime.timedelta(days=1)


def strict_client(ca: CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    ca.configure_trust(context)
    return context


def handshake(
    cert: LeafCert, client: ssl.SSLContext, *, send_chain: bool = True, host: str = "localhost"
) -> str | None:
    """Serve ``cert``, handshake from ``client``; the TLS version."""
    context = server_context(cert, send_intermediate=send_chain)
    with LocalTLSServer(context=context, respond="echo") as server:
        with socket.create_connection(server.address, timeout=30) as raw:
            with client.wrap_socket(raw, server_hostname=host) as tls:
                return tls.version()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


KEYS = {
    "ec": ec.EllipticCurvePrivateKey,
    "rsa": rsa.RSAPrivateKey,
    "ed25519": ed25519.Ed25519PrivateKey,
}


@pytest.mark.parametrize("ca_key", ["ec", "rsa", "ed25519"])
@pytest.mark.parametrize("leaf_key", ["ec", "rsa", "ed25519"])
def test_key_types_pass_strict_verification(ca_key: KeyType, leaf_key: KeyType) -> None:
    root = CA(key_type=ca_key)
    intermediate = root.create_child_ca(key_type=ca_key)
    leaf = intermediate.issue_cert("localhost", key_type=leaf_key)
    assert isinstance(leaf.private_key, KEYS[leaf_key])
    assert isinstance(root.private_key, KEYS[ca_key])
    assert handshake(leaf, strict_client(root)) == "TLSv1.3"


def test_key_identifiers_and_constraints() -> None:
    root = CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("localhost", "127.0.0.1", "::1", "*.example.test")
    assert leaf.chain == (intermediate.cert,)
    assert intermediate.parent is root
    for cert in (root.cert, intermediate.cert, leaf.cert):
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).critical
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    for cert, issuer in ((intermediate.cert, root.cert), (leaf.cert, intermediate.cert)):
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "*.example.test"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert CA().cert.subject != CA().cert.subject  # no two default CAs share a name


def test_locations_and_usages() -> None:
    root = CA(common_name="Root")
    intermediate = CA(common_name="Intermediate", parent=root, crl_url="http://crl.test/root.crl")
    leaf = intermediate.issue_cert(
        "localhost",
        ocsp_url="http://ocsp.test/",
        ca_issuers_url="http://aia.test/intermediate.der",
        crl_url="http://crl.test/intermediate.crl",
        serial=4242,
    )
    aia = leaf.cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "http://ocsp.test/"),
        (AuthorityInformationAccessOID.CA_ISSUERS, "http://aia.test/intermediate.der"),
    ]
    for cert, url in ((intermediate.cert, "root"), (leaf.cert, "intermediate")):
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert points[0].full_name[0].value == f"http://crl.test/{url}.crl"
    assert leaf.cert.serial_number == 4242
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]

    responder = intermediate.issue_cert(common_name="OCSP responder", usage=["ocsp_signing"])
    eku = responder.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    with pytest.raises(x509.ExtensionNotFound):  # no identities: no SAN
        responder.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    anything = intermediate.issue_cert("localhost", usage=())
    with pytest.raises(x509.ExtensionNotFound):
        anything.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


@pytest.mark.parametrize(
    ("validity", "message"),
    [
        ({"not_after": now() - DAY}, "certificate has expired"),
        ({"not_before": now() + DAY}, "certificate is not yet valid"),
    ],
)
def test_validity(validity: dict[str, datetime.datetime], message: str) -> None:
    root = CA()
    leaf = root.issue_cert("localhost", **validity)  # type: ignore[arg-type]
    with pytest.raises(ssl.SSLCertVerificationError, match=message):
        handshake(leaf, strict_client(root))


def test_broken_chain_wrong_host_and_unknown_issuer() -> None:
    root = CA()
    leaf = root.create_child_ca().issue_cert("localhost")
    assert len(leaf.cert_chain_pems) == 2
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(leaf, strict_client(root), send_chain=False)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(root.issue_cert("wrong-host.invalid"), strict_client(root))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(CA().issue_cert("localhost"), strict_client(root))


@pytest.mark.parametrize("client_cert", ["required", "optional"])
def test_client_certificates(client_cert: str) -> None:
    root = CA()
    context = server_context(
        root.issue_cert("localhost"),
        client_ca=root,
        client_cert=client_cert,  # type: ignore[arg-type]
        tls_max="1.2",
    )
    client = strict_client(root)
    root.issue_cert("client.test", usage=["client"]).configure_cert(client)
    with LocalTLSServer(context=context, respond="greet", greeting=b"hi") as server:
        with socket.create_connection(server.address, timeout=30) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.recv(2) == b"hi"
                tls.sendall(b"bye")
        result = server.next_result()
    assert (result.error, result.client_cert, result.received) == (None, True, b"bye")
    assert result.version == "TLSv1.2"


def test_blob(tmp_path: Path) -> None:
    blob = Blob(b"-----PEM-----\n")
    path = tmp_path / "x.pem"
    blob.write_to_path(path)
    blob.write_to_path(str(path), append=True)
    assert path.read_bytes() == blob.bytes() * 2
    with blob.tempfile(dir=str(tmp_path)) as name:
        assert Path(name).read_bytes() == blob.bytes()
    assert not os.path.exists(name)
    leaf = CA().issue_cert("localhost")
    both = leaf.private_key_and_cert_chain_pem.bytes()
    assert both == leaf.private_key_pem.bytes() + leaf.cert_pem.bytes()


def test_misuse() -> None:
    ca = CA()
    with pytest.raises(ValueError, match="identity or a common_name"):
        ca.issue_cert()
    with pytest.raises(ValueError, match="usage"):
        ca.issue_cert("localhost", usage=["email"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="key_type"):
        CA(key_type="dsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="client_cert"):
        server_context(ca.issue_cert("localhost"), client_ca=ca, client_cert="sometimes")  # type: ignore[arg-type]


def test_local_pki_authorities_and_not_yet_valid() -> None:
    with LocalPKI.temporary() as pki:
        leaf = pki.issue_cert()
        assert leaf.chain == (pki.intermediate.cert,)
        assert pki.intermediate.parent is pki.ca
        assert pki.untrusted_ca.issue_cert("x").chain == ()
        issued = pki.issue(not_yet_valid=True)
        pem = Path(issued.cert_file).read_bytes()
        assert x509.load_pem_x509_certificate(pem).not_valid_before_utc > now()
        with LocalTLSServer(pki=pki, certificate="not_yet_valid") as server:
            with pytest.raises(ssl.SSLCertVerificationError, match="not yet valid"):
                with socket.create_connection(server.address, timeout=30) as raw:
                    server.client_context().wrap_socket(raw, server_hostname="localhost")
