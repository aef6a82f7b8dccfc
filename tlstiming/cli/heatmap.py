"""The latency heatmap's grid (pure): runs counted by start time and latency (log scale)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["COLUMNS", "HEAT_COLOURS", "LEVELS", "ROWS", "Heatmap", "heatmap"]

ROWS: Final = 12
"""Latency buckets of the heatmap."""
COLUMNS: Final = 60
"""Time buckets of the heatmap when the output is not a terminal (else the terminal's width)."""
LEVELS: Final = 4
"""Shades of an occupied heatmap cell (0 is an empty cell)."""
HEAT_COLOURS: Final = ("#ffffff", "#3b528b", "#21918c", "#5ec962", "#fde725")
"""A heatmap cell's colour by level (viridis, dark to light: readable in colour and grey)."""


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Runs counted by when they started (columns) and how long they took (rows).

    Attributes:
        time_edges_s: ``columns + 1`` edges, seconds since the bench started.
        latency_edges_ms: ``rows + 1`` edges, milliseconds, evenly spaced on a log scale.
        counts: ``counts[row][column]``; row 0 holds the fastest runs.
    """

    time_edges_s: tuple[float, ...]
    latency_edges_ms: tuple[float, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def max_count(self) -> int:
        return max((max(row) for row in self.counts), default=0)

    @property
    def total(self) -> int:
        return sum(map(sum, self.counts))

    def level(self, count: int) -> int:
        """0 for an empty cell, else 1..LEVELS in proportion to the busiest cell."""
        if count <= 0:
            return 0
        return min(LEVELS, max(1, math.ceil(count * LEVELS / max(self.max_count, 1))))

    def level_ranges(self) -> list[tuple[int, int, int]]:
        """``(level, lowest count, highest count)`` for every level some count can have."""
        top = self.max_count
        ranges = []
        for level in range(1, LEVELS + 1):
            low, high = (level - 1) * top // LEVELS + 1, level * top // LEVELS
            if low <= high:
                ranges.append((level, low, high))
        return ranges

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_edges_s": [round(e, 6) for e in self.time_edges_s],
            "latency_edges_ms": [round(e, 6) for e in self.latency_edges_ms],
            "counts": [list(row) for row in self.counts],
        }


def heatmap(
    points: Sequence[tuple[float, float]], *, span_s: float, columns: int, rows: int
) -> Heatmap:
    """Count ``(seconds since start, latency ms)`` points into a grid.

    Args:
        points: one per run.
        span_s: the time the columns cover (the bench's duration).
        columns: time buckets, of equal width.
        rows: latency buckets, of equal width on a log scale from the fastest
            run to the slowest (widened when they are (nearly) equal).
    """
    if columns < 1 or rows < 1:
        raise ValueError("a heatmap needs at least one row and one column")
    span_s = max(span_s, max((t for t, _ in points), default=0.0), 1e-3)
    latencies = [max(ms, 1e-6) for _, ms in points] or [1.0]
    low, high = min(latencies), max(latencies)
    if high < low * 1.5:
        middle = math.sqrt(low * high)
        low, high = middle / 1.5, middle * 1.5
    ratio = math.log(high / low)
    counts = [[0] * columns for _ in range(rows)]
    for t, ms in points:
        column = min(int(t / span_s * columns), columns - 1)
        row = min(int(math.log(max(ms, low) / low) / ratio * rows), rows - 1)
        counts[max(row, 0)][max(column, 0)] += 1
    return Heatmap(
        tuple(span_s * i / columns for i in range(columns + 1)),
        tuple(low * math.exp(ratio * i / rows) for i in range(rows + 1)),
        tuple(map(tuple, counts)),
    )
