"""Chain analysis: the chain as sent, against a path built by ``cryptography.x509.verification``."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from typing import ClassVar, Final, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import SignatureAlgorithmOID

from tlstiming._recording import validate as check
from tlstiming._recording.verify import PeerInfo, Verdict
from tlstiming.spans.verification import Detail
from tlstiming.verifiers._revocation import Clock, utc_now
from tlstiming.verifiers._trust import Trust, issued_by, trust_for, trust_from

__all__ = ["FINDINGS", "ChainAnalysis", "Finding"]

Finding = Literal[
    "no_path",
    "missing_intermediate",
    "root_sent",
    "wrong_order",
    "unused_certificate",
    "duplicate",
    "expiring",
    "weak_key",
    "weak_signature",
    "large_flight",
]
FINDINGS: Final[frozenset[Finding]] = frozenset(get_args(Finding))
_WEAK_SIGNATURES: Final = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "RSA with MD5",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "RSA with SHA-1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSA with SHA-1",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "DSA with SHA-1",
}
_MIN_BITS: Final = {"RSA": 2048, "DSA": 2048, "EC": 256}


class ChainAnalysis:
    """Report what is wrong with the certificate chain a peer sent; reject only on request.

    Findings (each also a details key holding its explanation):

    - ``no_path``: no path to a trusted certificate could be built from the
      chain as sent, even with the trust store's intermediates.
    - ``missing_intermediate``: the chain as sent does not reach a root (a
      self-signed trusted certificate); it only verifies because the trust
      store holds an intermediate. Clients without it fail. AIA is not fetched.
    - ``root_sent``: the chain ends with a self-signed certificate (needless bytes).
    - ``wrong_order``: a certificate is not followed by its issuer.
    - ``unused_certificate``: a sent certificate is not on the issuer walk from the leaf.
    - ``duplicate``: the same certificate twice.
    - ``expiring``: a sent certificate expires within ``expiring_within_days``.
    - ``weak_key``: RSA or DSA under 2048 bits, EC under 256.
    - ``weak_signature``: MD5 or SHA-1 signature (self-signatures excluded).
    - ``large_flight``: the Certificate message exceeds ``max_flight_bytes``.

    With findings the check soft-fails (accepted, reason lists them); a
    finding listed in ``reject_on`` rejects. Also recorded: ``findings``
    (comma-separated), ``chain_length``, ``flight_bytes``, ``path_length``,
    ``expires_in_days`` (soonest), ``trust_source``. Resumed sessions carry
    no chain and are not analysed.

    Trust: ``trust=`` if given, else the context's CA certificates, else
    (a context that lists none, e.g. default verify paths) certifi's bundle.

    Args:
        expiring_within_days: report certificates expiring sooner than this.
        max_flight_bytes: report Certificate messages larger than this (a
            server's first flight should fit TCP's initial window, ~14 kB).
        reject_on: findings that reject the connection.
        trust: trusted certificates (certificates, DER or PEM bytes).
        clock: returns aware UTC now (tests).

    Raises:
        TypeError: ``reject_on`` is one string, ``clock`` is not callable,
            ``max_flight_bytes`` is not an int.
        ValueError: ``reject_on`` names an unknown finding;
            ``expiring_within_days`` is negative, NaN or infinite;
            ``max_flight_bytes`` is below 1.
    """

    name: ClassVar[str] = "chain"
    """The suggested name to register it under (phase ``verify:chain``)."""

    __slots__ = ("_clock", "_expiring_days", "_max_flight", "_reject_on", "_trust")

    def __init__(
        self,
        *,
        expiring_within_days: float = 30,
        max_flight_bytes: int = 10_000,
        reject_on: Iterable[Finding] = (),
        trust: Iterable[x509.Certificate | bytes] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(reject_on, str):
            raise TypeError("reject_on must be an iterable of findings, not one string")
        self._reject_on = frozenset(reject_on)
        unknown = self._reject_on - FINDINGS
        if unknown:
            raise ValueError(f"unknown findings in reject_on: {sorted(unknown)}")
        self._expiring_days = check.non_negative("expiring_within_days", expiring_within_days)
        self._max_flight = check.count("max_flight_bytes", max_flight_bytes, minimum=1)
        self._trust = None if trust is None else trust_from(trust, "explicit")
        self._clock = check.optional(check.callable_arg, "clock", clock) or utc_now

    def __call__(self, peer: PeerInfo) -> Verdict | None:
        """Analyse ``peer``'s chain."""
        if peer.resumed:
            return Verdict(reason="resumed session: no chain sent", details={"findings": ""})
        chain = peer.chain
        if not chain:
            return Verdict(soft_failed=True, reason="no certificate presented")
        trust = self._trust if self._trust is not None else trust_for(peer.context)
        found: dict[str, str] = {}
        details: dict[str, Detail] = {"chain_length": len(chain), "trust_source": trust.source}
        _order(chain, found)
        details["path_length"] = _path(chain, peer, trust, self._clock(), found)
        details["expires_in_days"] = self._expiry(chain, found)
        _weakness(chain, found)
        details["flight_bytes"] = flight = _flight_bytes(peer)
        if flight > self._max_flight:
            found["large_flight"] = f"{flight} bytes, over {self._max_flight}"
        details["findings"] = ",".join(sorted(found))
        details.update(found)
        summary = "; ".join(f"{name}: {why}" for name, why in sorted(found.items()))
        if self._reject_on.intersection(found):
            return Verdict(ok=False, reason=summary, details=details)
        return Verdict(soft_failed=bool(found), reason=summary or None, details=details)

    def _expiry(self, chain: tuple[x509.Certificate, ...], found: dict[str, str]) -> float:
        now = self._clock()
        days = [(c.not_valid_after_utc - now).total_seconds() / 86400 for c in chain]
        soonest = min(range(len(chain)), key=days.__getitem__)
        if days[soonest] < self._expiring_days:
            when = chain[soonest].not_valid_after_utc.isoformat()
            found["expiring"] = f"position {soonest} expires {when} ({days[soonest]:.1f} days)"
        return round(days[soonest], 1)


def _order(chain: tuple[x509.Certificate, ...], found: dict[str, str]) -> None:
    """Duplicates, order, unused certificates and a sent root, from the issuer walk."""
    seen: dict[x509.Certificate, int] = {}
    for position, cert in enumerate(chain):
        if cert in seen:
            found["duplicate"] = f"position {position} repeats position {seen[cert]}"
        seen.setdefault(cert, position)
    walk = [0]
    while True:
        current = chain[walk[-1]]
        candidates = (i for i in seen.values() if i not in walk)
        issuer = next((i for i in candidates if issued_by(current, chain[i])), None)
        if issuer is None:
            break
        walk.append(issuer)
    if walk != list(range(len(walk))):
        found["wrong_order"] = "sent order " + " -> ".join(map(str, walk))
    unused = sorted(set(seen.values()) - set(walk))
    if unused:
        found["unused_certificate"] = f"positions {', '.join(map(str, unused))}"
    top = chain[walk[-1]]
    if len(walk) > 1 and issued_by(top, top):
        found["root_sent"] = f"position {walk[-1]} is self-signed"


def _path(
    chain: tuple[x509.Certificate, ...],
    peer: PeerInfo,
    trust: Trust,
    now: datetime.datetime,
    found: dict[str, str],
) -> int | None:
    """Length of the path built from what was sent (roots only, then all trust), or ``None``."""
    error = "no trusted certificates"
    for roots_only in (True, False):
        store = trust.store(roots_only=roots_only)
        if store is None:
            continue
        builder = verification.PolicyBuilder().store(store).time(now)
        try:
            path = _verify(builder, chain, peer)
        except verification.VerificationError as exc:
            error = str(exc)
            continue
        if not roots_only:
            found["missing_intermediate"] = "the chain as sent does not reach a root"
        return len(path)
    found["no_path"] = error
    return None


def _verify(
    builder: verification.PolicyBuilder, chain: tuple[x509.Certificate, ...], peer: PeerInfo
) -> list[x509.Certificate]:
    leaf, rest = chain[0], list(chain[1:])
    if peer.side == "server":
        return builder.build_client_verifier().verify(leaf, rest).chain
    return builder.build_server_verifier(_subject(peer, leaf)).verify(leaf, rest)


def _subject(peer: PeerInfo, leaf: x509.Certificate) -> verification.Subject:
    """The name to verify: what the client asked for if it checks it, else the leaf's first."""
    name = peer.server_hostname if peer.context.check_hostname else None
    if name is None:
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = x509.SubjectAlternativeName([])
        names = [str(n.value) for n in san if isinstance(n, (x509.DNSName, x509.IPAddress))]
        name = names[0] if names else "invalid"
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        wildcard = name.startswith("*.")
        return x509.DNSName(f"wildcard.{name[2:]}" if wildcard else name)


def _weakness(chain: tuple[x509.Certificate, ...], found: dict[str, str]) -> None:
    keys, signatures = [], []
    for position, cert in enumerate(chain):
        kind, bits = _key_strength(cert.public_key())
        if kind in _MIN_BITS and bits < _MIN_BITS[kind]:
            keys.append(f"position {position}: {kind} {bits} bits")
        weak = _WEAK_SIGNATURES.get(cert.signature_algorithm_oid)
        if weak is not None and cert.subject != cert.issuer:
            signatures.append(f"position {position}: {weak}")
    if keys:
        found["weak_key"] = "; ".join(keys)
    if signatures:
        found["weak_signature"] = "; ".join(signatures)


def _key_strength(key: object) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    return type(key).__name__, 0


def _flight_bytes(peer: PeerInfo) -> int:
    """Size of the Certificate message that carried the chain, handshake header included."""
    tls13 = peer.protocol_version == "1.3"
    per_cert = 3 + (2 if tls13 else 0)  # length, and TLS 1.3's empty extensions
    body = (1 if tls13 else 0) + 3 + sum(per_cert + len(der) for der in peer.chain_der)
    return 4 + body
