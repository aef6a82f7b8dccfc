"""The session report's arithmetic: spans grouped by endpoint, percentiles per group and phase.

Pure (no pytest): the pytest plugin feeds it spans, merges xdist workers'
rows into it and prints or writes what :meth:`Tally.summary` returns.
"""

from __future__ import annotations

import threading
from typing import Any

from tlstiming.diagnosis.budget import host_of, percentile
from tlstiming.spans.escape import escape
from tlstiming.testing._endpoint import Endpoint, port_of, url_of

__all__ = ["Tally"]

# kind, side, host, port, url: a request span is grouped by URL, a handshake by host and port.
Key = tuple[str, str, str, "int | None", "str | None"]


class _Group:
    __slots__ = ("durations", "errors", "phases")

    def __init__(self) -> None:
        self.durations: list[int] = []
        self.errors = 0
        self.phases: dict[str, list[int]] = {}


def _stats(durations: list[int]) -> dict[str, Any]:
    return {
        "count": len(durations),
        "p50_ms": round(percentile(durations, 50) / 1e6, 3),
        "p95_ms": round(percentile(durations, 95) / 1e6, 3),
        "max_ms": round(max(durations) / 1e6, 3),
    }


class Tally:
    """Every span's duration and phase durations, grouped by kind, side, host, port and URL."""

    def __init__(self) -> None:
        self.groups: dict[Key, _Group] = {}
        self._lock = threading.Lock()

    def add(self, span: Any) -> None:
        """Count ``span`` (a sink: any span kind)."""
        side = getattr(span, "side", "")
        key: Key = (
            span.kind,
            side if isinstance(side, str) else "",
            host_of(span) or "?",
            port_of(span),
            url_of(span),
        )
        phases = [(p.name, p.duration_ns) for p in getattr(span, "phases", ())]
        with self._lock:
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _Group()
            group.durations.append(span.duration_ns)
            group.errors += span.outcome != "ok"
            for name, ns in phases:
                group.phases.setdefault(name, []).append(ns)

    def dump(self) -> list[list[Any]]:
        """The rows, as JSON-able lists (an xdist worker's output)."""
        return [[*k, g.durations, g.errors, g.phases] for k, g in self.groups.items()]

    def merge(self, rows: list[list[Any]]) -> None:
        """Fold in another tally's :meth:`dump`."""
        for kind, side, host, port, url, durations, errors, phases in rows:
            group = self.groups.setdefault((kind, side, host, port, url), _Group())
            group.durations.extend(durations)
            group.errors += errors
            for name, values in phases.items():
                group.phases.setdefault(name, []).extend(values)

    def summary(self) -> list[dict[str, Any]]:
        """One dict per group: its key, count, errors, percentiles, and each phase's."""

        def order(item: tuple[Key, _Group]) -> tuple[Any, ...]:
            kind, side, host, port, url = item[0]
            return (kind, side, host, -1 if port is None else port, url or "")

        out = []
        for (kind, side, host, port, url), group in sorted(self.groups.items(), key=order):
            row: dict[str, Any] = {"kind": kind, "side": side or None, "host": host}
            row.update(port=port, url=url)
            row.update(_stats(group.durations), errors=group.errors)
            row["phases"] = {name: _stats(v) for name, v in group.phases.items()}
            out.append(row)
        return out

    @staticmethod
    def lines(groups: list[dict[str, Any]]) -> list[str]:
        """The terminal table: one line per group, then one per phase, indented."""
        lines = [
            f"{'kind':<16}{'side':<8}{'endpoint':<36}{'count':>6}{'errors':>7}"
            f"{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}"
        ]
        for g in groups:  # the host can be a client's SNI name: escaped (the JSON keeps it)
            where = g["url"] or str(Endpoint(g["host"], g["port"]))
            kind, side, where = (escape(str(v or "-")) for v in (g["kind"], g["side"], where))
            lines.append(f"{kind:<16}{side:<8}{where:<36}" + _figures(g, g["errors"]))
            for name, stats in g["phases"].items():
                lines.append(f"{'':<24}  {escape(name):<34}" + _figures(stats, ""))
        return lines


def _figures(stats: dict[str, Any], errors: object) -> str:
    return (
        f"{stats['count']:>6}{errors!s:>7}"
        f"{stats['p50_ms']:>10.3f}{stats['p95_ms']:>10.3f}{stats['max_ms']:>10.3f}"
    )
