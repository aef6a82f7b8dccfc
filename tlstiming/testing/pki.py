"""A throwaway PKI in files for local test servers: root, intermediate, untrusted root."""

from __future__ import annotations

import datetime
import itertools
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from tlstiming.testing.ca import CA, LeafCert

__all__ = ["Issued", "LocalPKI"]

_DAY = datetime.timedelta(days=1)
SERVER_NAMES: Final = ("localhost", "127.0.0.1", "::1")
"""What a server certificate is valid for by default."""


@dataclass(frozen=True)
class Issued:
    """PEM files of one issued certificate.

    Attributes:
        cert_file: the certificate, followed by the intermediate when ``chain``.
        key_file: its private key (PKCS#8, unencrypted).
    """

    cert_file: str
    key_file: str


class LocalPKI:
    """A root CA, an intermediate CA under it, an untrusted root, and a client certificate.

    Server certificates come from the intermediate; the client certificate
    from the root. Everything is written as PEM files into ``directory``.

    Args:
        directory: an existing directory for the PEM files.

    Attributes:
        ca: the root :class:`~tlstiming.testing.CA` (issue more from it).
        intermediate: the intermediate CA that issues server certificates.
        untrusted_ca: a root that :attr:`ca_file` does not contain.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self._serial = itertools.count(1)
        self.ca = CA(common_name="tlstiming test root CA")
        self.intermediate = self.ca.create_child_ca(common_name="tlstiming test intermediate CA")
        self.untrusted_ca = CA(common_name="tlstiming untrusted CA")
        self.ca_pem: str = self.ca.cert_pem.bytes().decode("ascii")
        """The root CA certificate clients should trust, as PEM text."""
        self.ca_file: str = self._write("ca.pem", self.ca_pem.encode("ascii"))
        """The path of :attr:`ca_pem` (for ``cafile=``, ``SSL_CERT_FILE``, ``verify=``)."""
        client = self.ca.issue_cert("client.tlstiming.test", usage=("client",))
        self.client_cert: Issued = self._files(client, chain=True)
        """A client certificate issued by the root CA (and its key)."""

    @classmethod
    @contextmanager
    def temporary(cls) -> Iterator[LocalPKI]:
        """Yield a :class:`LocalPKI` in a temporary directory, deleted afterwards."""
        with tempfile.TemporaryDirectory(prefix="tlstiming-pki-") as directory:
            yield cls(directory)

    def issue_cert(
        self,
        hostnames: Sequence[str] = SERVER_NAMES,
        *,
        expired: bool = False,
        not_yet_valid: bool = False,
        untrusted: bool = False,
    ) -> LeafCert:
        """Issue a server certificate, in memory (arguments as for :meth:`issue`)."""
        issuer = self.untrusted_ca if untrusted else self.intermediate
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before, not_after = None, None
        if expired:
            not_after = now - _DAY
        if not_yet_valid:
            not_before, not_after = now + _DAY, now + 30 * _DAY
        return issuer.issue_cert(
            *hostnames, usage=("server",), not_before=not_before, not_after=not_after
        )

    def issue(
        self,
        hostnames: Sequence[str] = SERVER_NAMES,
        *,
        expired: bool = False,
        untrusted: bool = False,
        chain: bool = True,
        not_yet_valid: bool = False,
    ) -> Issued:
        """Issue a server certificate, as files.

        Args:
            hostnames: DNS names and IP addresses it is valid for.
            expired: make it expire yesterday.
            untrusted: issue it from a CA that :attr:`ca_file` does not contain.
            chain: put the intermediate CA after it in ``cert_file``; ``False``
                gives a server that forgets its intermediate.
            not_yet_valid: make it valid from tomorrow.
        """
        leaf = self.issue_cert(
            hostnames, expired=expired, not_yet_valid=not_yet_valid, untrusted=untrusted
        )
        return self._files(leaf, chain=chain)

    def _files(self, leaf: LeafCert, *, chain: bool) -> Issued:
        n = next(self._serial)
        pems = leaf.cert_chain_pems if chain else leaf.cert_chain_pems[:1]
        return Issued(
            cert_file=self._write(f"cert{n}.pem", b"".join(pem.bytes() for pem in pems)),
            key_file=self._write(f"key{n}.pem", leaf.private_key_pem.bytes()),
        )

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def __repr__(self) -> str:
        return f"<LocalPKI {self.directory}>"
