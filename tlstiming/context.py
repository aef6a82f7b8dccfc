"""The drop-in context: :class:`TimedSSLContext` and :func:`create_default_context`.

The implementation lives in :mod:`tlstiming._recording.context`.
"""

from __future__ import annotations

from tlstiming._recording.context import TimedSSLContext, create_default_context

__all__ = ["TimedSSLContext", "create_default_context"]
