"""The bench's charts drawn by matplotlib, for ``--svg`` and ``--png`` (the ``plot`` extra).

matplotlib is imported only here and only when a chart is asked for; the
figures are drawn without pyplot (no global state, no GUI backend), on the
Agg canvas.
"""

from __future__ import annotations

import io
from typing import Any, Final

from tlstiming.cli.bench_stats import (
    Bench,
    median_run,
    phase_colours,
    phase_medians,
    waterfall_rows,
)
from tlstiming.cli.heatmap import HEAT_COLOURS, Heatmap
from tlstiming.cli.options import UsageError

__all__ = ["PANELS", "draw_heatmap", "draw_phases", "draw_waterfall", "render", "require"]

PANELS: Final = ("heatmap", "phases", "waterfall")
_DPI: Final = 110


def require(option: str) -> None:
    """Fail with a usage error naming the extra when matplotlib is missing.

    Raises:
        UsageError: matplotlib cannot be imported.
    """
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        raise UsageError(f"{option} needs matplotlib: pip install 'tlstiming[plot]'") from None


def render(bench: Bench, heat: Heatmap, form: str, panels: tuple[str, ...] = PANELS) -> bytes:
    """The chosen panels, one above the other, as ``svg`` or ``png`` bytes."""
    import numpy as np  # noqa: PLC0415 (comes with matplotlib)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    heights = {"heatmap": 4.2, "phases": 3.4, "waterfall": 3.8}
    figure = Figure(figsize=(10, sum(heights[p] for p in panels)), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    title = f"tlstiming bench {bench.target}: {_counts(bench)}"
    figure.suptitle(title, fontsize=12, fontweight="bold")
    parts: Any = figure.subfigures(len(panels), 1, height_ratios=[heights[p] for p in panels])
    draw = {"heatmap": draw_heatmap, "phases": draw_phases, "waterfall": draw_waterfall}
    for part, panel in zip(np.atleast_1d(parts), panels, strict=True):
        draw[panel](part.subplots(), bench, heat)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=form, metadata=_metadata(form))
    return buffer.getvalue()


def _metadata(form: str) -> dict[str, Any]:
    # No dates or versions in the file: the same bench draws the same bytes.
    return {"Date": None} if form == "svg" else {"Software": None}


def _counts(bench: Bench) -> str:
    failed = len(bench.runs) - len(bench.ok)
    return f"{len(bench.runs)} probes, {bench.concurrency} at a time, {failed} failed"


def draw_heatmap(ax: Any, bench: Bench, heat: Heatmap) -> None:
    """Probes by start time (x) and total latency (y, log), shaded by count, with a colour bar."""
    import numpy as np  # noqa: PLC0415 (comes with matplotlib)
    from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    counts = np.ma.masked_equal(np.array(heat.counts, dtype=float), 0)
    ranges = heat.level_ranges() or [(1, 1, 1)]
    cmap = ListedColormap([HEAT_COLOURS[level] for level, _, _ in ranges])
    bounds = [ranges[0][1] - 0.5, *(high + 0.5 for _, _, high in ranges)]
    mesh = ax.pcolormesh(
        heat.time_edges_s,
        heat.latency_edges_ms,
        counts,
        cmap=cmap,
        norm=BoundaryNorm(bounds, cmap.N),
        edgecolors="#ffffff",
        linewidth=0.3,
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_facecolor("#f4f4f4")
    ax.set_xlabel("time since the bench started (s)")
    ax.set_ylabel("probe total (ms, log scale)")
    ax.set_title(f"Latency heatmap: {heat.total} successful probes, DNS to first byte")
    bar = ax.figure.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
    bar.set_ticks([(low + high) / 2 for _, low, high in ranges])
    bar.set_ticklabels([str(low) if low == high else f"{low}-{high}" for _, low, high in ranges])
    bar.set_label("probes per cell")


def draw_phases(ax: Any, bench: Bench, heat: Heatmap) -> None:
    """Median per phase, stacked: the request's phases, and the TLS handshake's; keyed right."""
    request, tls = phase_medians(bench)
    colours = phase_colours(bench)
    bars = [("request", request), ("TLS handshake", tls)]
    keys = []
    for depth, (label, medians) in enumerate(bars):
        left, handles = 0.0, []
        for name, ms in medians:
            handles.append(
                ax.barh(depth, ms, left=left, color=colours[depth, name], edgecolor="white",
                        height=0.6, label=f"{name} {ms:.3f}")
            )  # fmt: skip
            left += ms
        if handles:
            keys.append(ax.legend(
                handles=handles, title=f"{label} (median ms)", fontsize=7.5, title_fontsize=8,
                loc="upper left" if depth == 0 else "lower left", bbox_to_anchor=(1.01, 1 - depth),
                frameon=False,
            ))  # fmt: skip
    for key in keys[:-1]:
        ax.add_artist(key)
    ax.set_yticks(range(len(bars)), [label for label, _ in bars])
    ax.invert_yaxis()
    ax.set_xlabel("median time per phase (ms)")
    ax.set_title("Phase breakdown: median of each phase over the successful probes")


def draw_waterfall(ax: Any, bench: Bench, heat: Heatmap) -> None:
    """The median probe, phase by phase on one time line; TLS steps as ``tls.<step>``."""
    median = median_run(bench)
    if median is None:
        ax.text(0.5, 0.5, "no successful probe", ha="center", va="center")
        ax.set_axis_off()
        return
    rows = waterfall_rows(median.run)
    colours = phase_colours(bench)
    for y, (name, start, duration, depth) in enumerate(rows):
        colour = colours.get((depth, name), "#999999")
        ax.barh(y, max(duration, 1e-3), left=start, color=colour, height=0.7)
        ax.text(start + duration, y, f" {duration:.3f}", va="center", fontsize=7)
    labels = [("tls." if depth else "") + name for name, _, _, depth in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time since the probe started (ms)")
    total = median.total_ns / 1e6
    ax.set_title(f"Waterfall of the median probe ({total:.3f} ms)")
    ax.set_xlim(0, total * 1.12)
