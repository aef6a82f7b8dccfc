"""The TLS connection under an asyncio stream or an anyio stream, for ``span_of``.

Duck-typed, so that neither asyncio's streams nor anyio is imported here:
an asyncio ``StreamWriter`` (or transport) answers ``get_extra_info``; an
anyio stream answers ``extra()``, and when it exists anyio is imported.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ssl_object_of"]


def ssl_object_of(obj: Any) -> Any:
    """The ``ssl.SSLObject`` under ``obj``, or ``None``."""
    get_extra_info = getattr(obj, "get_extra_info", None)
    if callable(get_extra_info):  # asyncio.StreamWriter, an asyncio transport
        return get_extra_info("ssl_object")
    anyio_tls = sys.modules.get("anyio.streams.tls")
    extra = getattr(obj, "extra", None)
    if anyio_tls is not None and callable(extra):  # any anyio stream over a TLSStream
        return extra(anyio_tls.TLSAttribute.ssl_object, None)
    return None
