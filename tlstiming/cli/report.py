"""What ``tlstiming probe`` prints: the waterfall and the findings as text, or one JSON document."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

from tlstiming.cli.probe import ProbeRun
from tlstiming.diagnosis import Finding, severity_rank
from tlstiming.diagnosis.budget import percentile
from tlstiming.diagnosis.rules import endpoint
from tlstiming.spans.escape import escape
from tlstiming.spans.render import waterfall

__all__ = [
    "EXIT_CODES",
    "findings_text",
    "group_findings",
    "percentile_rows",
    "probe_json",
    "probe_text",
    "slo_misses",
]

EXIT_CODES = {
    "ok": 0,
    "findings": 1,
    "usage": 2,
    "failed": 3,
    "slo": 4,
}
"""``tlstiming probe`` exit statuses (docs/cli.md)."""


def exit_code(runs: Sequence[ProbeRun], findings: Sequence[Finding], misses: Sequence[str]) -> int:
    """The probe's exit status: failed 3, SLO missed 4, findings at warning or above 1, else 0."""
    if any(run.failure for run in runs):
        return EXIT_CODES["failed"]
    if misses:
        return EXIT_CODES["slo"]
    if any(severity_rank(f.severity) >= 1 for f in findings):
        return EXIT_CODES["findings"]
    return EXIT_CODES["ok"]


_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _ms(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def slo_misses(runs: Sequence[ProbeRun], slo: dict[str, float]) -> list[str]:
    """Every ``phase=ms`` limit a run broke, one line each (``total`` is the whole request)."""
    misses = []
    for n, run in enumerate(runs, 1):
        phases: dict[str, int] = defaultdict(int)
        for phase in run.request.phases:
            phases[phase.name] += phase.duration_ns
        if run.handshake is not None:
            for phase in run.handshake.phases:
                phases[phase.name] += phase.duration_ns
        phases["total"] = run.request.duration_ns
        for name, limit in slo.items():
            if name in phases and phases[name] / 1e6 > limit:
                misses.append(f"run {n}: {name} {_ms(phases[name])} ms > {limit:g} ms")
    return misses


def percentile_rows(runs: Sequence[ProbeRun]) -> list[tuple[str, float, float, float, float]]:
    """Per phase (request and handshake): p50, p90, p99 and max in milliseconds."""
    values: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        for phase in run.request.phases:
            values[phase.name].append(phase.duration_ns)
        if run.handshake is not None:
            for phase in run.handshake.phases:
                values["tls." + phase.name].append(phase.duration_ns)
        values["total"].append(run.request.duration_ns)
    return [
        (name, *(percentile(v, q) / 1e6 for q in (50, 90, 99)), max(v) / 1e6)  # type: ignore[misc]
        for name, v in values.items()
    ]


def group_findings(findings: Sequence[Finding]) -> list[tuple[Finding, int]]:
    """One finding per id and severity, worst first, with how many probes it was found in.

    The first of each group (the worst, as :func:`~tlstiming.diagnosis.diagnose`
    orders them) stands for the group; a collection finding counts its spans.
    """
    groups: dict[tuple[str, str], tuple[Finding, set[str]]] = {}
    for finding in findings:
        _, spans = groups.setdefault((finding.id, finding.severity), (finding, set()))
        spans.update(finding.span_ids or (finding.id,))
    return [(first, len(spans)) for first, spans in groups.values()]


def findings_text(findings: Sequence[Finding], runs: int = 1) -> list[tuple[str, str]]:
    """``(line, style)`` pairs: each finding with its id, evidence, fix and docs anchor.

    Over several runs, a finding found in many is shown once, with its count
    (the evidence is that of the first).
    """
    if not findings:
        return [("no findings", "green")]
    lines = []
    for f, count in group_findings(findings):
        seen = f" (in {count} of {runs} runs)" if runs > 1 and count < runs else ""
        seen = " (in every run)" if runs > 1 and count >= runs else seen
        lines.append((f"[{f.severity}] {f.id}: {f.title}{seen}", _STYLE[f.severity]))
        lines.append((f"    evidence: {f.evidence_text()}", ""))
        lines.append((f"    fix: {f.hint}", ""))
        lines.append((f"    see {f.docs}", "dim"))
    return lines


def probe_text(
    target: str,
    runs: Sequence[ProbeRun],
    findings: Sequence[Finding],
    misses: Sequence[str],
    out: TextIO,
) -> None:
    """The probe's report for people; every string from the peer is escaped."""
    from rich.console import Console  # noqa: PLC0415 (only the CLI pays for it)

    console = Console(file=out, markup=False, highlight=False, emoji=False, soft_wrap=True)
    console.print(f"probe {escape(target)}: {len(runs)} run(s)", style="bold")
    for n, run in enumerate(runs, 1):
        if len(runs) > 1 and n not in (1, len(runs)) and run.failure is None:
            continue  # the first and last of a series, and every failure
        _run_text(console, n, run)
    if len(runs) > 1:
        console.print("percentiles (ms):", style="bold")
        console.print(f"  {'phase':<28}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}")
        for name, p50, p90, p99, top in percentile_rows(runs):
            console.print(f"  {escape(name):<28}{p50:>10.3f}{p90:>10.3f}{p99:>10.3f}{top:>10.3f}")
    for miss in misses:
        console.print(f"SLO missed: {escape(miss)}", style="bold red")
    console.print("findings:", style="bold")
    for line, style in findings_text(findings, len(runs)):
        console.print(line, style=style or None)


def _run_text(console: Any, n: int, run: ProbeRun) -> None:
    request = run.request
    console.print(f"-- run {n}: {_ms(request.duration_ns)} ms", style="bold")
    connection = request.connection
    phases = {p.name: p for p in request.phases}
    if connection is not None:
        resolved = ", ".join(map(escape, connection.resolved)) or "-"
        dns = phases.get("dns")
        dns_ms = _ms(dns.duration_ns if dns else None)
        console.print(f"  dns        {escape(request.server_address)} -> {resolved}  {dns_ms} ms")
        for attempt in connection.attempts:
            outcome = (
                "ok"
                if attempt.error_type is None
                else escape(f"{attempt.error_type}: {attempt.error_message}")
            )
            where = escape(endpoint(attempt.address, attempt.port))
            console.print(f"  connect    {where}  {_ms(attempt.duration_ns)} ms  {outcome}")
    if run.handshake is not None:
        for line in waterfall(run.handshake).splitlines():
            console.print("  " + line)
    first = phases.get("wait_first_byte")
    if first is not None and request.http_version:
        status = f" {request.status_code}" if request.status_code is not None else ""
        version = escape(request.http_version)
        version = version if version.startswith("HTTP") else f"HTTP/{version}"
        console.print(f"  first byte {version}{status} after {_ms(first.duration_ns)} ms")
    if run.failure is not None:
        console.print(f"  failed ({run.failure}): {escape(run.message or '')}", style="bold red")


def probe_json(
    target: str,
    runs: Sequence[ProbeRun],
    findings: Sequence[Finding],
    misses: Sequence[str],
    exit_code: int,
) -> dict[str, Any]:
    """The probe's report as one JSON-ready document."""
    return {
        "target": target,
        "runs": [
            {
                "failure": run.failure,
                "message": run.message,
                "request": run.request.to_dict(),
                "handshake": None if run.handshake is None else run.handshake.to_dict(),
            }
            for run in runs
        ],
        "percentiles_ms": {
            name: {"p50": p50, "p90": p90, "p99": p99, "max": top}
            for name, p50, p90, p99, top in percentile_rows(runs)
        }
        if runs
        else {},
        "findings": [f.to_dict() for f in findings],
        "slo_missed": list(misses),
        "exit_code": exit_code,
    }
