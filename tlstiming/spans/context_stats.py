"""A context's setup cost as one span saw it: a value (the counters are in _recording.trust)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ContextStats", "stats"]


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
