"""What building a context and loading its trust store cost, per context.

A context built per request, or one whose CA bundle is reloaded before every
connection (urllib3 and requests do that when given CA paths), spends
milliseconds that no handshake timing shows. Each TimedSSLContext keeps
these counters and every span carries a snapshot of them.
"""

from __future__ import annotations

import itertools

__all__ = ["TrustAccount"]

_context_ids = itertools.count(1)


class TrustAccount:
    """The mutable counters behind :class:`~tlstiming.ContextStats` (one per context)."""

    __slots__ = (
        "_counter",
        "build_ns",
        "context_id",
        "handshakes",
        "load_ns",
        "loads",
        "loads_seen",
    )

    def __init__(self, build_ns: int) -> None:
        self.context_id = next(_context_ids)
        self.build_ns = build_ns
        self.loads = 0
        self.load_ns = 0
        self.loads_seen = 0
        self.handshakes = 0
        self._counter = itertools.count(
            1
        )  # next() is atomic: concurrent handshakes get distinct numbers

    def record_load(self, ns: int) -> None:
        """Count one trust-store load that took ``ns``."""
        self.loads += 1
        self.load_ns += ns

    def on_handshake(self) -> tuple[int, int, int, int, int, int]:
        """Count a handshake; return the snapshot a span keeps (a plain tuple: cheap)."""
        self.handshakes = index = next(self._counter)
        loads = self.loads
        since = loads - self.loads_seen
        self.loads_seen = loads
        return (self.context_id, self.build_ns, loads, self.load_ns, index, since)
