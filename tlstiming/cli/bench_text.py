"""What ``tlstiming bench`` prints for people: counts, percentiles, the heatmap, findings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TextIO

from tlstiming.cli.bench_stats import Bench
from tlstiming.cli.heatmap import Heatmap
from tlstiming.cli.report import findings_text
from tlstiming.diagnosis import Finding
from tlstiming.spans.escape import escape

__all__ = ["SHADES", "bench_text", "heatmap_lines"]

SHADES: Final = (" ", "░", "▒", "▓", "█")
"""The character of a heatmap cell by level: empty, then busier and busier."""
_COLOURS: Final = (None, "#6a8fd8", "#2bb3a3", "#6cc24a", "#f2b807")  # on dark and light
_LABEL: Final = 11  # width of the latency labels left of the grid


def bench_text(
    bench: Bench, findings: Sequence[tuple[Finding, int]], heat: Heatmap, out: TextIO
) -> None:
    """The bench's report for people; every string from the peer is escaped."""
    from rich.console import Console  # noqa: PLC0415 (only the CLI pays for it)

    console = Console(file=out, markup=False, highlight=False, emoji=False, soft_wrap=True)
    for line, style in summary_lines(bench):
        console.print(line, style=style or None)
    rows = bench.percentiles()
    if rows:
        console.print("percentiles over the successful probes (ms):", style="bold")
        console.print(f"  {'phase':<28}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
        for name, p50, p90, p99, top in rows:
            console.print(f"  {escape(name):<28}{p50:>10.3f}{p90:>10.3f}{p99:>10.3f}{top:>10.3f}")
    console.print(
        "latency heatmap: each probe's total (ms, log scale) by when it started (s)", style="bold"
    )
    for line in heatmap_lines(heat):
        console.print(line)
    console.print("findings:", style="bold")
    for line, style in grouped_findings_text(findings, len(bench.runs)):
        console.print(line, style=style or None)


def grouped_findings_text(
    findings: Sequence[tuple[Finding, int]], probes: int
) -> list[tuple[str, str]]:
    """:func:`~tlstiming.cli.report.findings_text`, each headed by how many probes had it."""
    if not findings:
        return findings_text(())
    lines = []
    for finding, count in findings:
        (head, style), *rest = findings_text([finding])
        lines += [(f"{head}  [{count} of {probes} probes]", style), *rest]
    return lines


def summary_lines(bench: Bench) -> list[tuple[str, str]]:
    """``(line, style)``: what ran, how many failed and why (one example message per kind)."""
    seconds = bench.elapsed_ns / 1e9
    done = len(bench.runs)
    rate = f", {done / seconds:.1f}/s" if seconds > 0 else ""
    lines = [
        (
            f"bench {escape(bench.target)}: {done} of {bench.requested} probes, "
            f"{bench.concurrency} at a time, {len(bench.ok)} ok, {done - len(bench.ok)} failed "
            f"in {seconds:.3f} s{rate}",
            "bold",
        )
    ]
    if bench.resume:
        resumed = sum(r.resumed for r in bench.ok)
        lines.append((f"  resumed: {resumed} of {len(bench.ok)}", ""))
    for kind, count in sorted(bench.failures.items()):
        example = next(r.run.message for r in bench.runs if r.run.failure == kind)
        lines.append((f"  failed ({escape(kind)}): {count}, e.g. {escape(example or '')}", "red"))
    if bench.interrupted:
        lines.append(("  interrupted: what finished before Ctrl-C", "bold yellow"))
    return lines


def heatmap_lines(heat: Heatmap) -> list[Any]:
    """The heatmap as rich ``Text`` lines: the slowest row first, a time axis, a legend.

    Each grid line is ``_LABEL`` characters of latency (the row's upper edge),
    ``|``, one character per column, ``|``.
    """
    from rich.text import Text  # noqa: PLC0415

    lines = []
    columns = len(heat.time_edges_s) - 1
    for row in range(len(heat.counts) - 1, -1, -1):
        line = Text(f"{_ms(heat.latency_edges_ms[row + 1]):>{_LABEL - 1}} |")
        for count in heat.counts[row]:
            level = heat.level(count)
            line.append(SHADES[level], style=_COLOURS[level] or "")
        line.append("|")
        lines.append(line)
    lines.append(Text(f"{_ms(heat.latency_edges_ms[0]):>{_LABEL - 1}} +{'-' * columns}+"))
    start, end = "0 s", f"{heat.time_edges_s[-1]:.3g} s"
    axis = f"{start}{'time since start':^{max(columns - len(start) - len(end), 0)}}{end}"
    lines.append(Text(" " * (_LABEL + 1) + axis))
    legend = Text(" " * (_LABEL + 1) + "probes per cell: ")
    for level, low, high in heat.level_ranges():
        legend.append(SHADES[level], style=_COLOURS[level] or "")
        legend.append(f" {low}" if low == high else f" {low}-{high}")
        legend.append("  ")
    legend.append(f"({heat.total} probes)")
    lines.append(legend)
    return lines


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 1000 else f"{value / 1000:.3g} s"
