"""The library's own exceptions.

tlstiming never translates or swallows the ``ssl`` errors a caller would see
without it; these are raised only for the library's own failures.
"""

from __future__ import annotations

__all__ = ["ParseError", "TLSTimingError"]


class TLSTimingError(Exception):
    """Root of every exception tlstiming raises for its own failures."""


class ParseError(TLSTimingError, ValueError):
    """A TLS handshake message could not be parsed.

    Raised by the sans-IO parser for any malformed, truncated or
    unsupported byte string; never any other exception.
    """
