"""What the async backend does its own way: anyio's (or trio's) resolver, order and deadline.

Hand-written, not generated: ``_sync/_compat.py`` is its counterpart, with
the same names. ``scripts/unasync.py`` leaves both alone; everything else in
``_async/`` is the source of its ``_sync/`` twin.

As httpcore's ``AnyIOBackend`` (through ``anyio.connect_tcp``), the addresses
come from the running library's ``getaddrinfo`` in anyio's order (first
IPv6, first IPv4, then the rest) and ``timeout`` bounds the whole connect,
DNS included. Unlike anyio the attempts are sequential (no Happy Eyeballs
race): every attempt has a time of its own.
"""

from __future__ import annotations

import socket
from typing import Any, Final

import httpcore

__all__ = ["NO_ADDRESS", "attempt_timeout", "deadline", "native_backend", "resolve"]

NO_ADDRESS: Final = "All connection attempts failed"


def native_backend() -> httpcore.AsyncNetworkBackend:
    """httpcore's own choice (its AutoBackend): trio's backend under trio, anyio's
    otherwise, so connections and their errors are the same."""
    return httpcore.TrioBackend() if _library() == "trio" else httpcore.AnyIOBackend()


async def resolve(host: str, port: int, local_address: str | None) -> list[tuple[str, int]]:
    """The addresses to try, in anyio's order (of ``local_address``'s family, if given).

    Raises:
        OSError: the name did not resolve.
    """
    family = socket.AF_UNSPEC
    if local_address:
        family = (await _getaddrinfo(local_address, None))[0][0]
    infos = await _getaddrinfo(host, port, family)
    return _anyio_order([(info[0], str(info[4][0]), int(info[4][1])) for info in infos])


def deadline(timeout: float | None) -> Any:
    """A deadline for the whole connect, in the running library's terms (``TimeoutError``)."""
    if _library() == "trio":
        return _TrioTimeout(timeout)
    import anyio  # noqa: PLC0415

    return anyio.fail_after(timeout)


def attempt_timeout(timeout: float | None) -> float | None:
    """An attempt's own timeout: none, the :func:`deadline` bounds them all."""
    del timeout
    return None


def _anyio_order(infos: list[tuple[int, str, int]]) -> list[tuple[str, int]]:
    """First IPv6 address, then first IPv4 address, then the rest: anyio's order."""
    out: list[tuple[str, int]] = []
    v6 = v4 = False
    for family, address, port in infos:
        if family == socket.AF_INET6 and not v6:
            v6 = True
            out.insert(0, (address, port))
        elif family == socket.AF_INET and not v4 and v6:
            v4 = True
            out.insert(1, (address, port))
        else:
            out.append((address, port))
    return out


def _library() -> str:
    """The running async library, as httpcore tells them apart."""
    try:
        import sniffio  # noqa: PLC0415

        return str(sniffio.current_async_library())
    except Exception:  # sniffio missing or undecided: anyio handles it
        return "asyncio"


async def _getaddrinfo(host: str, port: int | None, family: int = 0) -> list[Any]:
    """Resolve with the running library's resolver (trio's under trio)."""
    if _library() == "trio":
        import trio  # noqa: PLC0415

        return list(
            await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        )
    import anyio  # noqa: PLC0415

    return list(await anyio.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM))


class _TrioTimeout:
    """``trio.fail_after`` that raises ``TimeoutError``, as ``anyio.fail_after`` does."""

    def __init__(self, timeout: float | None) -> None:
        import trio  # noqa: PLC0415

        self._trio = trio
        self._scope: Any = trio.fail_after(timeout) if timeout is not None else None

    def __enter__(self) -> None:
        if self._scope is not None:
            self._scope.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        if self._scope is None:
            return False
        try:
            return bool(self._scope.__exit__(*exc))
        except self._trio.TooSlowError as timeout:
            raise TimeoutError from timeout
