"""The bench's charts as inline SVG, written by hand (no dependency, no external asset).

Every string that reaches the markup goes through :func:`h`: peer text is
made printable (:func:`tlstiming.spans.escape.escape`) and HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Final

from tlstiming.cli.heatmap import HEAT_COLOURS, Heatmap
from tlstiming.spans.escape import escape

__all__ = ["h", "heatmap_svg", "nice_ticks", "phases_svg", "waterfall_svg"]

_WIDTH: Final = 900
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="12" fill="#222"'
_EMPTY: Final = "#f4f4f4"
_OTHER: Final = "#999999"

Colours = Mapping[tuple[int, str], str]
"""``(depth, phase) -> colour``: depth 0 for request phases, 1 for TLS phases."""


def h(text: object) -> str:
    """Printable and HTML-escaped: safe in element content and in quoted attributes."""
    return html.escape(escape(str(text)), quote=True)


def nice_ticks(top: float, count: int = 6) -> list[float]:
    """Round tick values from 0 to at least ``top`` (steps of 1, 2 or 5 times a power of 10)."""
    top = top if top > 0 else 1.0
    raw = top / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(top / step + 1e-9) + 1)]


def _num(value: float) -> str:
    return f"{value:.4g}"


def _svg(height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg role="img" viewBox="0 0 {_WIDTH} {height:.0f}" width="{_WIDTH}" '
        f'height="{height:.0f}" {_FONT}><title>{h(title)}</title>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: object, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{h(text)}</text>'


def _scale(top: float, width: float, *, fit: bool = False) -> tuple[list[float], float]:
    """Ticks and pixels per unit: to the next round tick, or (``fit``) to ``top`` exactly."""
    ticks = nice_ticks(top)
    if fit and top > 0:
        return [t for t in ticks if t <= top * (1 + 1e-9)], width / top
    return ticks, width / ticks[-1]


def _x_axis(left: float, y: float, ticks: list[float], scale: float, unit: str) -> list[str]:
    """An axis along ``y``: a line, ticks with labels, and the axis title under them."""
    width = ticks[-1] * scale
    parts = [f'<line x1="{left}" y1="{y}" x2="{left + width:.1f}" y2="{y}" stroke="#888"/>']
    for tick in ticks:
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 5}" stroke="#888"/>')
        parts.append(_text(x, y + 18, _num(tick), "middle"))
    parts.append(_text(left + width / 2, y + 38, unit, "middle", ' font-weight="bold"'))
    return parts


def heatmap_svg(heat: Heatmap) -> str:
    """Probes by start time and total latency (log scale), shaded by count, with a legend."""
    left, top, right, cell_h = 90, 36, 150, 22
    rows, columns = len(heat.counts), len(heat.time_edges_s) - 1
    cell_w = (_WIDTH - left - right) / columns
    plot_w, plot_h = columns * cell_w, rows * cell_h
    title = f"Latency heatmap: {heat.total} successful probes, DNS to first byte"
    body = [_text(left, 20, title, extra=' font-size="15" font-weight="bold"')]
    body.append(
        f'<rect x="{left}" y="{top}" width="{plot_w:.1f}" height="{plot_h}" fill="{_EMPTY}"/>'
    )
    for row, counts in enumerate(heat.counts):
        y = top + plot_h - (row + 1) * cell_h
        for column, count in enumerate(counts):
            if count:
                body.append(_cell(heat, row, column, left + column * cell_w, y, cell_w, cell_h))
    for row, edge in enumerate(heat.latency_edges_ms):
        body.append(_text(left - 6, top + plot_h - row * cell_h + 4, f"{edge:.3g} ms", "end"))
    ticks, scale = _scale(heat.time_edges_s[-1], plot_w, fit=True)
    body += _x_axis(left, top + plot_h, ticks, scale, "")
    middle = top + plot_h / 2
    body.append(
        _text(left + plot_w / 2, top + plot_h + 38, "time since the bench started (s)", "middle",
              ' font-weight="bold"')
    )  # fmt: skip
    body.append(
        _text(16, middle, "probe total (ms, log scale)", "middle",
              f' font-weight="bold" transform="rotate(-90 16 {middle:.1f})"')
    )  # fmt: skip
    body += _legend(heat, left + plot_w + 24, top)
    return _svg(top + plot_h + 50, title, body)


def _cell(heat: Heatmap, row: int, column: int, x: float, y: float, w: float, h_: float) -> str:
    count = heat.counts[row][column]
    low, high = heat.latency_edges_ms[row], heat.latency_edges_ms[row + 1]
    start, end = heat.time_edges_s[column], heat.time_edges_s[column + 1]
    tip = f"{count} probes, {_num(low)}-{_num(high)} ms, started {_num(start)}-{_num(end)} s"
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h_}" '
        f'fill="{HEAT_COLOURS[heat.level(count)]}" stroke="#fff" stroke-width="0.5">'
        f"<title>{h(tip)}</title></rect>"
    )


def _legend(heat: Heatmap, x: float, top: float) -> list[str]:
    parts = [_text(x, top + 10, "probes per cell", extra=' font-weight="bold"')]
    for i, (level, low, high) in enumerate(heat.level_ranges()):
        y = top + 22 + i * 22
        parts.append(f'<rect x="{x}" y="{y}" width="18" height="16" fill="{HEAT_COLOURS[level]}"/>')
        parts.append(_text(x + 26, y + 12, str(low) if low == high else f"{low}-{high}"))
    return parts


def phases_svg(bars: Sequence[tuple[str, Sequence[tuple[str, float]]]], colours: Colours) -> str:
    """Stacked bars of median ms per phase, one bar per ``(label, phases)``, each with a key.

    Bar ``i`` takes its colours from ``colours`` at depth ``i``.
    """
    left, right, top = 120, 30, 36
    width = _WIDTH - left - right
    longest = max((sum(ms for _, ms in phases) for _, phases in bars), default=0.0)
    ticks, scale = _scale(longest, width)
    title = "Phase breakdown: median of each phase over the successful probes"
    body = [_text(left, 20, title, extra=' font-size="15" font-weight="bold"')]
    y = top
    for depth, (label, phases) in enumerate(bars):
        body.append(_text(left - 8, y + 19, label, "end", ' font-weight="bold"'))
        x = float(left)
        for name, ms in phases:
            colour = colours.get((depth, name), _OTHER)
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{max(ms * scale, 0.5):.1f}" height="28" '
                f'fill="{colour}"><title>{h(f"{name}: {ms:.3f} ms")}</title></rect>'
            )
            x += ms * scale
        y += 36
        key_x = float(left)
        for name, ms in phases:
            item = f"{name} {ms:.3f} ms"
            if key_x + 14 + 7 * len(item) > _WIDTH - right:
                key_x, y = float(left), y + 18
            colour = colours.get((depth, name), _OTHER)
            body.append(f'<rect x="{key_x:.1f}" y="{y}" width="10" height="10" fill="{colour}"/>')
            body.append(_text(key_x + 14, y + 9, item, extra=' font-size="11"'))
            key_x += 24 + 6.5 * len(item)
        y += 30
    body += _x_axis(left, y, ticks, scale, "median time per phase (ms)")
    return _svg(y + 50, title, body)


def waterfall_svg(
    rows: Sequence[tuple[str, float, float, int]], total_ms: float, colours: Colours
) -> str:
    """One row per phase on the probe's time line; TLS steps indented under ``tls``."""
    left, right, top, row_h = 170, 90, 36, 22
    width = _WIDTH - left - right
    ticks, scale = _scale(total_ms, width)
    title = f"Waterfall of the median probe ({total_ms:.3f} ms)"
    body = [_text(left, 20, title, extra=' font-size="15" font-weight="bold"')]
    for i, (name, start, duration, depth) in enumerate(rows):
        y = top + i * row_h
        colour = colours.get((depth, name), _OTHER)
        body.append(_text(12 + 16 * depth, y + 15, name))
        x = left + start * scale
        body.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(duration * scale, 1):.1f}" '
            f'height="{row_h - 6}" fill="{colour}"/>'
        )
        body.append(_text(x + max(duration * scale, 1) + 4, y + 15, f"{duration:.3f}"))
    bottom = top + len(rows) * row_h + 4
    body += _x_axis(left, bottom, ticks, scale, "time since the probe started (ms)")
    return _svg(bottom + 50, title, body)
