"""``tlstiming bench``: many probes, some at a time; percentiles, findings, a heatmap, reports.

``-c`` worker threads (:mod:`tlstiming.cli.bench_workers`) take probes
until ``-n`` have been taken; every probe has its own ``--timeout``.
Ctrl-C stops taking probes, gives the ones in flight a second to finish,
and reports what finished (exit 130); a second Ctrl-C ends the wait.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Final, TextIO

from tlstiming.cli import probe_options
from tlstiming.cli.bench_stats import Bench, bench_heatmap, bench_json, group_findings, own_findings
from tlstiming.cli.bench_workers import measure, worker_context
from tlstiming.cli.heatmap import COLUMNS, Heatmap
from tlstiming.cli.options import UsageError
from tlstiming.cli.report import EXIT_CODES
from tlstiming.diagnosis import Finding, diagnose, severity_rank

__all__ = ["INTERRUPTED", "run"]

INTERRUPTED: Final = 130
"""The exit status after Ctrl-C (128 + SIGINT), with what was measured printed."""


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``tlstiming bench`` with parsed arguments; the report goes to ``out``."""
    options = probe_options(args)
    _check_outputs(args)
    contexts = [worker_context(options) for _ in range(min(args.concurrency, args.requests))]
    show_progress = not (args.no_progress or args.json) and _is_tty(out) and _is_tty(sys.stderr)
    bench = measure(options, args, contexts, show_progress)
    findings = group_findings(own_findings(diagnose([r.run.request for r in bench.runs])))
    code = _exit_code(bench, findings)
    columns = _heatmap_columns(out)
    heat = bench_heatmap(bench, columns=columns)
    _write_reports(args, bench, findings, heat)
    if args.json:
        out.write(json.dumps(bench_json(bench, findings, heat, code)) + "\n")
    else:
        from tlstiming.cli.bench_text import bench_text  # noqa: PLC0415

        bench_text(bench, findings, heat, out)
    return code


def _exit_code(bench: Bench, findings: list[tuple[Finding, int]]) -> int:
    if bench.interrupted:
        return INTERRUPTED
    if any(r.run.failure for r in bench.runs):
        return EXIT_CODES["failed"]
    if any(severity_rank(f.severity) >= 1 for f, _ in findings):
        return EXIT_CODES["findings"]
    return EXIT_CODES["ok"]


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _heatmap_columns(out: TextIO) -> int:
    if not _is_tty(out):
        return COLUMNS
    return max(20, min(100, shutil.get_terminal_size().columns - 14))


# -- the outputs, checked before a single probe ---------------------------------------------


def _check_outputs(args: argparse.Namespace) -> None:
    for option, path in (("--html", args.html), ("--svg", args.svg), ("--png", args.png)):
        if path is not None:
            _check_writable(path, option)
    if args.svg is not None or args.png is not None:
        from tlstiming.cli import charts  # noqa: PLC0415

        charts.require("--svg" if args.svg is not None else "--png")


def _check_writable(path: str, option: str) -> None:
    if not path:
        raise UsageError(f"{option}: empty path")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path!r}: no such directory {parent!r}")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path!r}: not writable")


def _write_reports(
    args: argparse.Namespace, bench: Bench, findings: list[tuple[Finding, int]], heat: Heatmap
) -> None:
    if args.html is not None:
        from tlstiming.cli.bench_html import bench_html  # noqa: PLC0415

        _write(args.html, "--html", bench_html(bench, findings, heat).encode("utf-8"))
    for option, path, form in (("--svg", args.svg, "svg"), ("--png", args.png, "png")):
        if path is not None:
            from tlstiming.cli import charts  # noqa: PLC0415

            _write(path, option, charts.render(bench, heat, form))


def _write(path: str, option: str, data: bytes) -> None:
    try:
        with open(path, "wb") as file:
            file.write(data)
    except OSError as exc:
        raise UsageError(f"{option} {path!r}: cannot write ({exc.strerror or exc})") from None
