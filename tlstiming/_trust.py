"""What building a context and loading its trust store cost, per context.

A context built per request, or one whose CA bundle is reloaded before every
connection (urllib3 and requests do that when given CA paths), spends
milliseconds that no handshake timing shows. Each TimedSSLContext keeps
these counters and every span carries a snapshot of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

__all__ = ["ContextStats", "TrustAccount"]

_context_ids = itertools.count(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextStats:
    """A context's setup cost, as seen by one of its handshakes.

    Attributes:
        context_id: a small number naming the context within this process.
        build_ns: time spent creating the context (OpenSSL's ``SSL_CTX_new``).
        trust_loads: calls to ``load_verify_locations``/``set_default_verify_paths``
            (``load_default_certs`` and ``create_default_context`` make them).
        trust_load_ns: total time spent in them.
        handshake_index: this handshake's number on the context, from 1:
            ``1`` for every span means a new context per connection.
        trust_loads_since_previous: loads since the context's previous
            handshake began: non-zero for a later handshake means the trust
            store was reloaded for this connection.
    """

    context_id: int
    build_ns: int
    trust_loads: int
    trust_load_ns: int
    handshake_index: int
    trust_loads_since_previous: int


class TrustAccount:
    """The mutable counters behind :class:`ContextStats` (one per context)."""

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


def stats(snapshot: tuple[int, int, int, int, int, int]) -> ContextStats:
    """Expand a snapshot from :meth:`TrustAccount.on_handshake`."""
    return ContextStats(
        context_id=snapshot[0],
        build_ns=snapshot[1],
        trust_loads=snapshot[2],
        trust_load_ns=snapshot[3],
        handshake_index=snapshot[4],
        trust_loads_since_previous=snapshot[5],
    )
