"""What a bench measured, summarised (pure): counts, failures, medians, the latency heatmap.

Nothing here does I/O or reads a clock: a :class:`Bench` holds the runs and
the times they were taken at, and every function reads only that.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tlstiming.cli.heatmap import COLUMNS, ROWS, Heatmap, heatmap
from tlstiming.cli.probe import ProbeRun
from tlstiming.cli.report import group_findings, percentile_rows
from tlstiming.diagnosis import Finding
from tlstiming.diagnosis.budget import percentile

__all__ = [
    "PHASE_COLOURS",
    "TLS_COLOURS",
    "Bench",
    "BenchRun",
    "bench_heatmap",
    "bench_json",
    "group_findings",
    "median_run",
    "own_findings",
    "phase_colours",
    "phase_medians",
    "waterfall_rows",
]

PHASE_COLOURS: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""Request phases' colours, in the order the phases happen (matplotlib's tab10)."""
TLS_COLOURS: Final = (
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)
"""TLS handshake phases' colours (tab20's light half: steps inside the ``tls`` phase)."""


@dataclass(frozen=True, slots=True)
class BenchRun:
    """One probe of a bench, and which worker made it."""

    run: ProbeRun
    worker: int

    @property
    def total_ns(self) -> int:
        return self.run.request.duration_ns

    @property
    def resumed(self) -> bool:
        handshake = self.run.handshake
        return handshake is not None and handshake.facts.resumed


@dataclass(frozen=True, slots=True, kw_only=True)
class Bench:
    """A bench's outcome: its runs in the order they finished, and the times they span.

    Attributes:
        target: the target as shown to people.
        requested: how many probes were asked for (``-n``).
        concurrency: how many at a time (``-c``).
        resume: workers resumed their sessions.
        start_ns: when the bench started (``perf_counter_ns`` clock, as the spans).
        elapsed_ns: how long it ran.
        runs: every finished probe.
        interrupted: stopped by Ctrl-C before every probe ran.
    """

    target: str
    requested: int
    concurrency: int
    resume: bool
    start_ns: int
    elapsed_ns: int
    runs: tuple[BenchRun, ...]
    interrupted: bool = False

    @property
    def ok(self) -> tuple[BenchRun, ...]:
        return tuple(r for r in self.runs if r.run.failure is None)

    @property
    def failures(self) -> dict[str, int]:
        """How many probes failed, by kind (``dns``, ``connect``, ``tls``, ``timeout``)."""
        return dict(Counter(r.run.failure for r in self.runs if r.run.failure is not None))

    def offset_s(self, run: BenchRun) -> float:
        """When ``run`` started, in seconds since the bench started."""
        return max(run.run.request.start_ns - self.start_ns, 0) / 1e9

    def percentiles(self) -> list[tuple[str, float, float, float, float]]:
        """p50, p90, p99 and max per phase, in ms, over the probes that succeeded."""
        ok = self.ok
        rows = percentile_rows([r.run for r in ok]) if ok else []
        return [row for row in rows if row[-1] > 0]  # not a phase no probe spent time in


def own_findings(findings: Sequence[Finding]) -> list[Finding]:
    """The findings that are about the target, not about how the bench connects.

    Left out: ``tls.trust_store_per_connection`` (each worker has a context
    of its own, by design) and ``tls.no_resumption`` when no session was
    offered (the bench offers none without ``--resume``).
    """
    return [
        f
        for f in findings
        if f.id != "tls.trust_store_per_connection"
        and not (f.id == "tls.no_resumption" and not f.get("offered"))
    ]


def median_run(bench: Bench) -> BenchRun | None:
    """The successful run with the median total (the lower one of an even count)."""
    ok = sorted(bench.ok, key=lambda r: r.total_ns)
    return ok[(len(ok) - 1) // 2] if ok else None


def phase_medians(bench: Bench) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Median ms per request phase and per TLS handshake phase, in the order they happen."""
    request: dict[str, list[int]] = defaultdict(list)
    tls: dict[str, list[int]] = defaultdict(list)
    for r in bench.ok:
        for phase in r.run.request.phases:
            request[phase.name].append(phase.duration_ns)
        if r.run.handshake is not None:
            for phase in r.run.handshake.phases:
                tls[phase.name].append(phase.duration_ns)

    def medians(values: dict[str, list[int]]) -> list[tuple[str, float]]:
        out = [(name, percentile(v, 50) / 1e6) for name, v in values.items()]
        return [(name, ms) for name, ms in out if ms > 0]

    return medians(request), medians(tls)


def waterfall_rows(run: ProbeRun) -> list[tuple[str, float, float, int]]:
    """``(phase, start ms, duration ms, depth)``: request phases, each TLS phase under ``tls``."""
    request = run.request
    rows = []
    for phase in request.phases:
        if phase.duration_ns == 0 and phase.name == "pool_wait":
            continue
        start = (phase.start_ns - request.start_ns) / 1e6
        rows.append((phase.name, start, phase.duration_ns / 1e6, 0))
        if phase.name == "tls" and run.handshake is not None:
            for step in run.handshake.phases:
                offset = (step.start_ns - request.start_ns) / 1e6
                rows.append((step.name, offset, step.duration_ns / 1e6, 1))
    return rows


def phase_colours(bench: Bench) -> dict[tuple[int, str], str]:
    """``(depth, phase) -> colour``: 0 for request phases, 1 for TLS phases, as ordered."""
    request, tls = phase_medians(bench)
    colours = {
        (0, name): PHASE_COLOURS[i % len(PHASE_COLOURS)] for i, (name, _) in enumerate(request)
    }
    colours.update(
        {(1, name): TLS_COLOURS[i % len(TLS_COLOURS)] for i, (name, _) in enumerate(tls)}
    )
    return colours


def bench_heatmap(bench: Bench, *, columns: int = COLUMNS, rows: int = ROWS) -> Heatmap:
    """The heatmap of a bench's successful runs: total time against start time."""
    points = [(bench.offset_s(r), r.total_ns / 1e6) for r in bench.ok]
    return heatmap(points, span_s=bench.elapsed_ns / 1e9, columns=columns, rows=rows)


def bench_json(
    bench: Bench, findings: Sequence[tuple[Finding, int]], heat: Heatmap, exit_code: int
) -> dict[str, Any]:
    """The bench as one JSON-ready document (docs/cli.md lists the keys)."""
    return {
        "target": bench.target,
        "requested": bench.requested,
        "concurrency": bench.concurrency,
        "resume": bench.resume,
        "count": len(bench.runs),
        "ok": len(bench.ok),
        "failed": len(bench.runs) - len(bench.ok),
        "failures": bench.failures,
        "interrupted": bench.interrupted,
        "elapsed_ms": bench.elapsed_ns / 1e6,
        "percentiles_ms": {
            name: {"p50": p50, "p90": p90, "p99": p99, "max": top}
            for name, p50, p90, p99, top in bench.percentiles()
        },
        "findings": [{**f.to_dict(), "probes": n} for f, n in findings],
        "heatmap": heat.to_dict(),
        "runs": [
            {
                "worker": r.worker,
                "start_ms": bench.offset_s(r) * 1e3,
                "total_ms": r.total_ns / 1e6,
                "resumed": r.resumed,
                "failure": r.run.failure,
                "message": r.run.message,
            }
            for r in bench.runs
        ],
        "exit_code": exit_code,
    }
