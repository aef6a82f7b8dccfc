"""OCSP stapling on a TimedSSLContext: what a client asks for, what a server staples.

CPython's ``ssl`` can do neither (python/cpython#88946): both go through
native hooks (:func:`tlstiming._recording.native.openssl`). A server's
staple is a DER OCSP response, or a callable asked on every handshake whose
client sent ``status_request``; whatever goes wrong there costs the staple,
never the handshake.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeAlias

from tlstiming._recording import native

__all__ = ["StapleSource", "get_request", "set_request", "set_staple", "staple_for"]

StapleSource: TypeAlias = bytes | Callable[[str | None], bytes | None]
"""A DER OCSP response, or a callable from the requested server name to one (or None)."""

MAX_STAPLE_BYTES = 1 << 20  # the accelerator's bound, too
_log = logging.getLogger("tlstiming")
_FEATURE = "OCSP stapling"


def get_request(context: ssl.SSLContext) -> bool:
    """Whether ``context``'s client handshakes send ``status_request``."""
    if native.implementation().name != "native":
        return False
    return bool(native.openssl(_FEATURE).native_status_request(context))


def set_request(context: ssl.SSLContext, value: object) -> None:
    """Ask (or stop asking) for a staple in ``context``'s ClientHellos."""
    if not isinstance(value, bool):
        raise TypeError(f"ocsp_stapling must be a bool, not {type(value).__name__}")
    if not value and native.implementation().name != "native":
        return  # never asked: nothing to undo
    native.openssl(_FEATURE).native_status_request(context, value)


def _check_der(der: object, what: str) -> bytes:
    if not isinstance(der, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be DER bytes or a callable, not {type(der).__name__}")
    data = bytes(der)
    if not data or len(data) > MAX_STAPLE_BYTES:
        raise ValueError(f"{what} must be 1 to {MAX_STAPLE_BYTES} bytes, not {len(data)}")
    from cryptography.x509 import ocsp  # noqa: PLC0415 (only when stapling)

    try:
        ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise ValueError(f"{what} is not a DER OCSP response: {exc}") from None
    return data


def set_staple(context: Any, source: StapleSource | None) -> None:
    """Staple ``source``'s responses to ``context``'s server handshakes, or stop (None)."""
    if source is None:
        context._tlstiming_staple = None
        if native.implementation().name == "native":
            native.openssl(_FEATURE).native_staple(context, False)
        return
    accelerator = native.openssl(_FEATURE)  # refuse before anything changes
    if not callable(source):
        source = _check_der(source, "the staple")
    context._tlstiming_staple = source
    accelerator.native_staple(context, True)


def staple_for(context: Any, server_name: str | None) -> bytes | None:
    """The staple for one handshake (called by OpenSSL's status callback); never raises."""
    source = getattr(context, "_tlstiming_staple", None)
    if source is None or isinstance(source, bytes):
        return source
    try:
        der = source(server_name)
        if der is None:
            return None
        if not isinstance(der, bytes | bytearray | memoryview):
            raise TypeError(f"returned {type(der).__name__}, not DER bytes or None")
        data = bytes(der)
        if len(data) > MAX_STAPLE_BYTES:
            raise ValueError(f"returned {len(data)} bytes (a staple is at most {MAX_STAPLE_BYTES})")
    except Exception:
        _log.warning(
            "tlstiming: the OCSP staple source %r failed; this handshake has no staple",
            source,
            exc_info=True,
        )
        return None
    return data or None  # empty: no staple
