"""``tlstiming bench --html``: one self-contained page (inline CSS and SVG, nothing fetched).

Every string from the peer or the user is made printable and HTML-escaped
(:func:`tlstiming.cli.svg.h`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tlstiming.cli.bench_stats import (
    Bench,
    median_run,
    phase_colours,
    phase_medians,
    waterfall_rows,
)
from tlstiming.cli.bench_text import summary_lines
from tlstiming.cli.heatmap import Heatmap
from tlstiming.cli.svg import h, heatmap_svg, phases_svg, waterfall_svg
from tlstiming.diagnosis import Finding

__all__ = ["bench_html"]

_CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 2em auto; max-width: 960px;
  padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
code { font-family: ui-monospace, monospace; background: #f4f4f4; padding: 0 .25em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .2em .8em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.finding { border-left: 5px solid #888; padding: .3em 1em; margin: 1em 0; background: #fafafa; }
.finding.error { border-color: #c62828; } .finding.warning { border-color: #f9a825; }
.finding.info { border-color: #1e88e5; }
.severity { text-transform: uppercase; font-weight: bold; font-size: .8em; }
.muted { color: #666; } svg { max-width: 100%; height: auto; }
"""


def bench_html(bench: Bench, findings: Sequence[tuple[Finding, int]], heat: Heatmap) -> str:
    """The whole report as one HTML document."""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>tlstiming bench {h(bench.target)}</title><style>{_CSS}</style></head><body>",
        f"<h1>tlstiming bench <code>{h(bench.target)}</code></h1>",
        *(
            f'<p class="{"muted" if n else ""}">{h(line)}</p>'
            for n, (line, _) in enumerate(summary_lines(bench))
        ),
        "<h2>Findings</h2>",
        *_findings(findings, len(bench.runs)),
        "<h2>Latency over time</h2>",
        heatmap_svg(heat),
        "<h2>Phase breakdown</h2>",
        _phases(bench),
        "<h2>Waterfall of the median probe</h2>",
        _waterfall(bench),
        "<h2>Percentiles (ms, successful probes)</h2>",
        _percentiles(bench),
        '<p class="muted">Made by <code>tlstiming bench</code>. Times in milliseconds unless '
        "marked; each probe: DNS, TCP connect, TLS handshake, first byte.</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _findings(findings: Sequence[tuple[Finding, int]], probes: int) -> list[str]:
    if not findings:
        return ["<p>No findings.</p>"]
    out = []
    for f, count in findings:
        evidence = "".join(
            f"<tr><td>{h(name)}</td><td>{h(_value(value))}</td></tr>" for name, value in f.evidence
        )
        out.append(
            f'<section class="finding {h(f.severity)}" id="{h(f.id)}">'
            f'<p><span class="severity">{h(f.severity)}</span> <code>{h(f.id)}</code> '
            f'<span class="muted">in {count} of {probes} probes</span></p>'
            f"<p><strong>{h(f.title)}</strong></p>"
            f"<table>{evidence}</table>"
            f"<p>Fix ({h(f.side)}): {h(f.hint)}</p>"
            f'<p class="muted">See <code>{h(f.docs)}</code></p></section>'
        )
    return out


def _value(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


def _phases(bench: Bench) -> str:
    request, tls = phase_medians(bench)
    if not request:
        return "<p>No successful probe.</p>"
    return phases_svg([("request", request), ("TLS handshake", tls)], phase_colours(bench))


def _waterfall(bench: Bench) -> str:
    median = median_run(bench)
    if median is None:
        return "<p>No successful probe.</p>"
    handshake = median.run.handshake
    facts = handshake.facts if handshake is not None else None
    about = (
        f"TLS {facts.protocol_version or '?'}, {facts.cipher or '-'}, group {facts.group or '-'}, "
        f"ALPN {facts.alpn_selected or 'none'}{', resumed' if facts.resumed else ''}"
        if facts is not None
        else "no handshake"
    )
    chart = waterfall_svg(waterfall_rows(median.run), median.total_ns / 1e6, phase_colours(bench))
    return f"<p>{h(about)}</p>{chart}"


def _percentiles(bench: Bench) -> str:
    rows = bench.percentiles()
    if not rows:
        return "<p>No successful probe.</p>"
    body = "".join(
        f"<tr><td>{h(name)}</td>" + "".join(f"<td>{v:.3f}</td>" for v in values) + "</tr>"
        for name, *values in rows
    )
    head = "<tr><th>phase</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>"
    return f"<table>{head}{body}</table>"
