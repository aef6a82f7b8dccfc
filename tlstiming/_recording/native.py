"""Native hooks on OpenSSL itself: which implementation records, and why.

Three implementations record a handshake, each falling back to the next:

- ``"native"``: the C accelerator sets its own C message callback on each
  connection's ``SSL`` for the handshake (OpenSSL resolved from the very
  library ``_ssl`` is linked against, the object layout validated first);
  no Python code and no GIL per message. The default where every check passes.
- ``"callback"``: CPython's ``_msg_callback`` trampoline into the accelerator.
- ``"python"``: the same, into the pure-Python reference (``conn.py``).

``TLSTIMING_NO_NATIVE=1`` and ``TLSTIMING_PURE_PYTHON=1`` force the last two.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal

__all__ = [
    "SWITCH",
    "Implementation",
    "harvest",
    "implementation",
    "openssl",
    "prepare",
    "probe",
    "rearm",
    "select",
]

ImplementationName = Literal["native", "callback", "python"]


@dataclass(frozen=True, slots=True)
class Implementation:
    """Which implementation records this process's handshakes.

    Attributes:
        name: ``"native"``, ``"callback"`` or ``"python"``.
        reason: why the faster ones are not used (``""`` for ``"native"``).
    """

    name: ImplementationName
    reason: str = ""


_current = Implementation("python", "not selected yet")
_speedups: Any = None  # the accelerator while new handshakes are recorded natively
_validated: Any = None  # the accelerator, once native hooks passed every check


def implementation() -> Implementation:
    """Which implementation records this process's handshakes, and why not a faster one.

    Chosen once, when tlstiming's recording is first imported: ``"native"``
    where every check passes; ``TLSTIMING_NO_NATIVE=1`` forces ``"callback"``,
    ``TLSTIMING_PURE_PYTHON=1`` forces ``"python"``.
    """
    from tlstiming._recording import conn  # noqa: F401, PLC0415 (importing it selects)

    return _current


def probe(speedups: Any, *, simulate: dict[str, Any] | None = None) -> str | None:
    """Check that native hooks can be used here; ``None`` if so, else the reason.

    ``simulate`` overrides what is checked (tests): ``path``, ``version``,
    ``options``, ``sslobj`` or ``symbol`` (an extra symbol that must resolve).
    """
    import _ssl  # noqa: PLC0415

    over = simulate or {}
    path = over.get("path", getattr(_ssl, "__file__", None))
    if path is None:
        return "_ssl is built into the interpreter (statically linked)"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    conn = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="probe.invalid")
    sslobj = over.get("sslobj", conn._sslobj)  # type: ignore[attr-defined]
    version = over.get("version", ssl.OPENSSL_VERSION_NUMBER)
    options = over.get("options", int(context.options))
    reason: str | None = speedups.native_init(
        path, version, context, options, sslobj, over.get("symbol")
    )
    if reason is None and not over:
        global _validated
        _validated = speedups
    return reason


def select(speedups: ModuleType | None, *, python_reason: str = "") -> Implementation:
    """Choose the implementation (at import, once) and turn native hooks on or off."""
    global _current
    SWITCH.on = False
    if speedups is None:
        _current = Implementation("python", python_reason or "the C accelerator is not built")
        return _current
    if os.environ.get("TLSTIMING_NO_NATIVE"):
        reason: str | None = "TLSTIMING_NO_NATIVE is set"
    elif not getattr(speedups, "NATIVE_POSSIBLE", 0):
        reason = "native hooks are implemented for Linux only"
    else:
        try:
            reason = probe(speedups)
        except Exception as exc:  # any doubt: the callback path
            reason = f"probe failed: {exc!r}"
    if reason is not None:
        _current = Implementation("callback", reason)
        return _current
    SWITCH.on = True
    _current = Implementation("native")
    return _current


class _Switch:
    """Native recording of new handshakes, on or off (benchmarks and tests switch it)."""

    __slots__ = ()

    @property
    def on(self) -> bool:
        return _speedups is not None

    @on.setter
    def on(self, value: bool) -> None:
        global _speedups
        if value and _validated is None:
            raise RuntimeError("native hooks have not passed their checks in this process")
        if _validated is not None:
            _validated.native_enable(value)
        _speedups = _validated if value else None


SWITCH: Final = _Switch()
"""``SWITCH.on``: whether new handshakes are recorded natively."""


def harvest(conn: Any, events: Any) -> Any:
    """``events`` with what the native callback recorded for ``conn`` merged in."""
    if _speedups is None:
        return events
    return _speedups.native_harvest(conn, events)


def rearm(conn: Any) -> None:
    """After a server's ``sni_callback``: a context switch resets the connection's callback."""
    if _speedups is not None:
        _speedups.native_rearm(conn)


def prepare(context: ssl.SSLContext) -> None:
    """Time ``context``'s chain verification (a phase of natively recorded handshakes)."""
    if _validated is not None:  # a pass-through for connections recorded otherwise
        _validated.native_prepare(context)


def openssl(feature: str) -> Any:
    """The accelerator, for a feature only native hooks can provide; else a clear error.

    Raises:
        NotImplementedError: OpenSSL cannot be reached here, with the reason.
    """
    if implementation().name != "native" or _validated is None:
        raise NotImplementedError(
            f"{feature} needs tlstiming's native hooks, which are off here: {_current.reason}"
        )
    return _validated
