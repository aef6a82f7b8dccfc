"""The library's own exceptions.

tlstiming never translates or swallows the ``ssl`` errors a caller would see
without it; these are raised only for the library's own failures.
"""

from __future__ import annotations

__all__ = ["HandshakeAbandoned", "ParseError", "TLSTimingError"]


class TLSTimingError(Exception):
    """Root of every exception tlstiming raises for its own failures."""


class ParseError(TLSTimingError, ValueError):
    """A TLS handshake message could not be parsed.

    Raised by the sans-IO parser for any malformed, truncated or
    unsupported byte string; never any other exception.
    """


class HandshakeAbandoned(TLSTimingError):
    """Names the error of a span whose handshake was given up outside ``do_handshake()``.

    Never raised: it is the ``error.type`` of a span whose connection was
    closed or discarded mid-handshake by its owner (asyncio dropping an
    ``SSLObject`` after a connection loss or its ``ssl_handshake_timeout``,
    a non-blocking socket closed before its handshake finished). The
    exception the caller saw, if any, was raised elsewhere and is unknown.
    """


HandshakeAbandoned.__module__ = "tlstiming"
