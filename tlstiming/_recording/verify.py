"""Verifiers: user checks that run after the handshake, before the caller gets the connection.

Python's ``ssl`` has no verify callback. A :class:`~tlstiming.TimedSSLContext`
runs its verifiers right after OpenSSL's own verification succeeded, on the
thread that drives the handshake, and records each one as a timed phase.
A verifier can only add checks: it never makes OpenSSL accept what it
rejected.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from tlstiming._recording.verify_workers import VerifierOverrun, VerifierWorkers
from tlstiming.errors import TLSTimingError
from tlstiming.spans.verification import Detail, Outcome, Verification

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "OnError",
    "PeerInfo",
    "Verdict",
    "Verification",
    "VerificationFailed",
    "Verifier",
    "VerifierRejected",
    "VerifierSpec",
]

OnError = Literal["reject", "accept"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerInfo:
    """What a verifier sees of one connection, right after its handshake.

    Attributes:
        side: ``"client"`` (checking the server) or ``"server"`` (checking a client).
        server_hostname: the name the client asked for.
        sni: the server_name sent in the ClientHello.
        alpn: the ALPN protocol selected, if any.
        protocol_version: ``"1.3"``, ``"1.2"``…
        resumed: the session was resumed: the peer sent no certificates, and
            ``chain_der`` holds only the leaf remembered by the session.
        chain_der: the peer's chain as it sent it, leaf first, DER each.
        ocsp_staple: the DER OCSP response the server stapled, if any.
        context: the context the handshake ran on (its trust store is what
            ``context.get_ca_certs(binary_form=True)`` returns).
        may_block: ``False`` on the BIO path (asyncio), where the verifier
            runs on the event loop and must not wait on the network.
    """

    side: Literal["client", "server"]
    server_hostname: str | None
    sni: str | None
    alpn: str | None
    protocol_version: str | None
    resumed: bool
    chain_der: tuple[bytes, ...]
    ocsp_staple: bytes | None
    context: ssl.SSLContext
    may_block: bool

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The chain as ``cryptography`` certificates (parsed on each access)."""
        from cryptography import x509  # noqa: PLC0415

        return tuple(x509.load_der_x509_certificate(der) for der in self.chain_der)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What a verifier decided; returning ``None`` means plain acceptance.

    Attributes:
        ok: ``False`` rejects the connection.
        reason: why (required when rejecting or soft-failing).
        soft_failed: the check could not be made but the policy accepts the
            connection anyway (e.g. an OCSP responder that timed out); recorded.
        details: facts for the span (responder URL, status, cache hit…),
            JSON-ready values only. Never put secrets here.
    """

    ok: bool = True
    reason: str | None = None
    soft_failed: bool = False
    details: Mapping[str, Detail] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The verifier that builds a bad Verdict fails here, inside its own call
        # (an ``error`` for its on_error policy); the runner checks again anyway.
        _interpret(self)


class Verifier(Protocol):
    """A callable that checks one connection."""

    def __call__(self, peer: PeerInfo, /) -> Verdict | None: ...


class VerificationFailed(TLSTimingError):
    """Raise from a verifier to reject the connection with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VerifierRejected(ssl.SSLCertVerificationError):
    """A verifier rejected the connection: what the caller gets.

    A subclass of :class:`ssl.SSLCertVerificationError`, so code that
    handles verification failures handles it. ``verify_message`` is the
    verifier's reason; ``verifier`` its name.
    """

    def __init__(self, verifier: str, reason: str) -> None:
        message = f"certificate verify failed: {verifier}: {reason}"
        super().__init__(1, message)
        self.verifier = verifier
        self.verify_message = reason
        self.verify_code = 0
        self.reason = "VERIFIER_REJECTED"
        self.library = "tlstiming"

    def __str__(self) -> str:
        return str(self.args[1])


VerifierRejected.__module__ = "tlstiming"


@dataclass(frozen=True, slots=True)
class VerifierSpec:
    """A verifier as registered on a context, with its policy.

    Validated here, the one place every spec is made: a bad name, timeout or
    policy is refused when the verifier is added, never met mid-handshake.
    """

    verifier: Callable[[PeerInfo], Verdict | None]
    name: str
    timeout: float | None
    on_error: OnError
    workers: VerifierWorkers | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.verifier):
            raise TypeError(f"verifier must be callable, not {type(self.verifier).__name__}")
        if not isinstance(self.name, str):
            raise TypeError(f"verifier name must be a str, not {type(self.name).__name__}")
        if not self.name or not self.name.isprintable():
            raise ValueError(f"verifier name must be non-empty printable text, not {self.name!r}")
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
                raise TypeError(f"timeout must be a number, not {type(self.timeout).__name__}")
            if not (math.isfinite(self.timeout) and self.timeout > 0):
                raise ValueError(
                    f"timeout must be a finite number of seconds > 0, not {self.timeout}"
                )
            if self.workers is None:
                object.__setattr__(self, "workers", VerifierWorkers(self.name))
        if self.on_error not in ("reject", "accept"):
            raise ValueError(f"on_error must be 'reject' or 'accept', not {self.on_error!r}")


def run_verifiers(
    specs: tuple[VerifierSpec, ...],
    peer: PeerInfo,
    mark: Callable[[str, bool], int],
) -> tuple[list[Verification], VerifierRejected | None]:
    """Run ``specs`` in order until one rejects.

    Whatever a verifier returns or raises that is not an explicit accept (a
    malformed answer included) is an ``error`` handled by its ``on_error``.

    Args:
        specs: the context's verifiers.
        peer: what they check.
        mark: called with (name, True) before and (name, False) after each
            verifier; returns the time it recorded (``perf_counter_ns``).

    Returns:
        The recorded runs, and the exception for the caller if one rejected.
    """
    done: list[Verification] = []
    for spec in specs:
        start = mark(spec.name, True)
        outcome, reason, details = _run_one(spec, peer)
        done.append(
            Verification(
                name=spec.name,
                start_ns=start,
                end_ns=mark(spec.name, False),
                outcome=outcome,
                reason=reason,
                details=details,
            )
        )
        if outcome == "rejected" or (outcome in ("error", "timeout") and spec.on_error == "reject"):
            return done, VerifierRejected(spec.name, reason or outcome)
    return done, None


_Result = tuple[Outcome, str | None, tuple[tuple[str, Detail], ...]]


def _run_one(spec: VerifierSpec, peer: PeerInfo) -> _Result:
    try:
        if spec.workers is None or spec.timeout is None:
            verdict = spec.verifier(peer)
        else:
            verdict = spec.workers.run(spec.verifier, peer, spec.timeout)
    except VerificationFailed as failed:
        return "rejected", _text(failed.reason), ()
    except VerifierOverrun as overrun:
        return "timeout", str(overrun), ()
    except Exception as exc:  # a verifier's bug: handled by its on_error policy
        return "error", describe(exc), ()
    try:
        return _interpret(verdict)
    except Exception as exc:  # a malformed answer: never an accept by accident
        return "error", f"malformed verdict: {describe(exc)}", ()


def _interpret(verdict: object) -> _Result:
    """Read a verifier's answer; anything but ``None`` or a well-formed Verdict raises."""
    if verdict is None:
        return "accepted", None, ()
    if not isinstance(verdict, Verdict):
        raise TypeError(f"returned {type(verdict).__name__}, expected None or a Verdict")
    ok, soft, reason = verdict.ok, verdict.soft_failed, verdict.reason
    if not isinstance(ok, bool) or not isinstance(soft, bool):
        raise TypeError("Verdict.ok and Verdict.soft_failed must be bool")
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"Verdict.reason must be a str or None, not {type(reason).__name__}")
    details = _details(verdict.details)
    if not ok:
        return "rejected", reason or "rejected", details
    if soft:
        return "soft_failed", reason, details
    return "accepted", reason, details


def _details(details: object) -> tuple[tuple[str, Detail], ...]:
    if not isinstance(details, Mapping):
        raise TypeError(f"Verdict.details must be a mapping, not {type(details).__name__}")
    pairs = list(details.items())
    for key, value in pairs:
        if not isinstance(key, str):
            raise TypeError(f"Verdict.details keys must be str, not {type(key).__name__}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(f"Verdict.details[{key!r}] is a {type(value).__name__}")
    return tuple(sorted(pairs))


def _text(value: object) -> str:
    return value if isinstance(value, str) else describe_value(value)


def describe_value(value: object) -> str:
    """``str(value)``, or its type's name if that fails (a repr must never raise here)."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, whatever its ``__str__`` does."""
    return f"{type(exc).__name__}: {describe_value(exc)}"
