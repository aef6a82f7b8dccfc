"""What the sync backend does its own way: ``socket.create_connection``'s resolver and timeout.

Hand-written, not generated: the counterpart of ``_async/_compat.py``, with
the same names. ``scripts/unasync.py`` leaves both alone.

As httpcore's ``SyncBackend`` (through ``socket.create_connection``), the
addresses come from ``getaddrinfo(host, port, 0, SOCK_STREAM)`` in its
order, and ``timeout`` applies to each attempt; there is no overall deadline.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Final

import httpcore

__all__ = ["NO_ADDRESS", "attempt_timeout", "deadline", "native_backend", "resolve"]

NO_ADDRESS: Final = "getaddrinfo returns an empty list"


def native_backend() -> httpcore.NetworkBackend:
    """httpcore's sync backend."""
    return httpcore.SyncBackend()


def resolve(host: str, port: int, local_address: str | None) -> list[tuple[str, int]]:
    """The addresses to try, in ``getaddrinfo``'s order (``local_address`` is not consulted).

    Raises:
        OSError: the name did not resolve.
    """
    del local_address
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return [(str(info[4][0]), int(info[4][1])) for info in infos]


def deadline(timeout: float | None) -> contextlib.nullcontext[None]:
    """No deadline for the whole connect: ``timeout`` bounds each attempt."""
    del timeout
    return contextlib.nullcontext()


def attempt_timeout(timeout: float | None) -> float | None:
    """An attempt's own timeout: ``timeout``, as ``socket.create_connection`` applies it."""
    return timeout
