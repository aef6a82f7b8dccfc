"""Public-key pinning: SHA-256 pins of SubjectPublicKeyInfo, like HPKP's ``pin-sha256``."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlstiming._recording.verify import PeerInfo, Verdict
from tlstiming.spans.verification import Detail

__all__ = ["SPKIPins", "spki_pin"]


def spki_pin(cert: x509.Certificate | bytes) -> str:
    """The pin of a certificate's key: base64 of SHA-256 over its DER SubjectPublicKeyInfo.

    The same value as ``openssl x509 -pubkey -noout | openssl pkey -pubin
    -outform der | openssl dgst -sha256 -binary | base64``.

    Args:
        cert: a certificate, or its DER or PEM bytes.
    """
    if isinstance(cert, bytes) and b"-----BEGIN" in cert:
        cert = x509.load_pem_x509_certificate(cert)
    elif isinstance(cert, bytes):
        cert = x509.load_der_x509_certificate(cert)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def _checked(pins: Iterable[str], label: str) -> frozenset[str]:
    if isinstance(pins, str) or not isinstance(pins, Iterable):
        kind = "one string" if isinstance(pins, str) else type(pins).__name__
        raise TypeError(f"{label} must be an iterable of pins, not {kind}")
    result = set()
    for pin in pins:
        try:
            raw = base64.b64decode(pin, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(f"{label}: {pin!r} is not a base64 SHA-256 digest")
        result.add(pin)
    return frozenset(result)


class SPKIPins:
    """Accept a peer only if a pinned key appears in the chain it presented.

    Pins are compared with the chain *as sent* (OpenSSL has already checked
    it chains to a trusted root): the leaf only with ``leaf_only=True``, else
    any certificate, so pinning an intermediate's key survives leaf renewals.
    A rejection names the presented keys' pins, ready to paste into the list.
    A resumed session presents only its leaf: when that does not match, the
    check soft-fails instead (the session was pinned when it was made).

    Details recorded: ``matched`` (``primary``, ``backup`` or ``None``),
    ``pin`` (the matching pin), ``position`` (0 is the leaf), ``presented``
    (the number of certificates compared).

    Args:
        pins: the pins to accept (base64 SHA-256, see :func:`spki_pin`).
        backup: more pins to accept (keys not yet in use; reported as ``backup``
            when they match, so a rotation shows up in the span).
        leaf_only: compare the leaf's key only.

    Raises:
        TypeError: ``pins`` or ``backup`` is not an iterable of strings.
        ValueError: a pin is not base64 of 32 bytes, or there are none.
    """

    name: ClassVar[str] = "pins"
    """The suggested name to register it under (phase ``verify:pins``)."""

    __slots__ = ("_backup", "_leaf_only", "_primary")

    def __init__(
        self, pins: Iterable[str], *, backup: Iterable[str] = (), leaf_only: bool = False
    ) -> None:
        self._primary = _checked(pins, "pins")
        self._backup = _checked(backup, "backup") - self._primary
        if not self._primary and not self._backup:
            raise ValueError("at least one pin is required")
        self._leaf_only = leaf_only

    def __call__(self, peer: PeerInfo) -> Verdict | None:
        """Check ``peer``'s chain against the pins."""
        chain = peer.chain_der[:1] if self._leaf_only else peer.chain_der
        presented = [spki_pin(der) for der in chain]
        details: dict[str, Detail] = {"matched": None, "pin": None, "presented": len(presented)}
        for position, pin in enumerate(presented):
            kind = "primary" if pin in self._primary else "backup" if pin in self._backup else None
            if kind is not None:
                details.update(matched=kind, pin=pin, position=position)
                return Verdict(details=details)
        if not presented:
            return Verdict(ok=False, reason="no certificate presented", details=details)
        listed = ", ".join(f'pin-sha256="{pin}"' for pin in presented)
        reason = (
            f"no pinned key in the {'leaf' if self._leaf_only else 'chain'}; presented {listed}"
        )
        if peer.resumed:
            reason = f"resumed session: {reason}"
            return Verdict(ok=True, soft_failed=True, reason=reason, details=details)
        return Verdict(ok=False, reason=reason, details=details)
