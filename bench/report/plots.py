"""Plots for the HTML report, as inline SVG (the page stays one self-contained file).

- Per task: a bar per upstream (measured, with the seed spread as error bars) beside the
  published numbers for the same task and metric.
- Per task: a heatmap of the learned layer weights (softmax of the weighted sum), one row per
  upstream: which layers each upstream's probe used.

Figures are drawn with matplotlib's object API (no pyplot state, no GUI backend). Each SVG
gets its own id salt so that several inline SVGs never share element ids.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from bench.report.leaderboard import Leaderboard, TaskColumn, published_value
from bench.report.units import unit_of

MEASURED_COLOUR = "#3b6ea8"
PUBLISHED_COLOUR = "#c8c8c8"
MISSING_TEXT = "no result"
ANNOTATE_MAX_LAYERS = 16


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    spread: float | None
    published: bool


def task_bars(board: Leaderboard, column: TaskColumn) -> list[Bar]:
    """The bars of one task: measured upstreams, then published rows that report the task."""
    bars = []
    for upstream in board.upstreams:
        result = board.result(upstream, column.task)
        stat = result.metrics.get(column.metric or "") if result else None
        value = stat.mean if stat else None
        spread = stat.std if stat and stat.n > 1 else None
        bars.append(Bar(upstream, value, spread, published=False))
    for label in dict.fromkeys(board.references.published["upstream"]):
        value = published_value(board, label, column.task, column.metric)
        if value is not None:
            bars.append(Bar(f"{label} (published)", value, None, published=True))
    return bars


def task_bars_svg(board: Leaderboard, column: TaskColumn, salt: str) -> str:
    from matplotlib.figure import Figure

    bars = task_bars(board, column)
    figure = Figure(figsize=(7.0, 0.42 * len(bars) + 1.3))
    axis = figure.subplots()
    positions = np.arange(len(bars))[::-1]
    values = [bar.value if _finite(bar.value) else 0.0 for bar in bars]
    axis.barh(
        positions,
        values,
        xerr=[bar.spread or 0.0 for bar in bars],
        color=[PUBLISHED_COLOUR if bar.published else MEASURED_COLOUR for bar in bars],
        error_kw={"capsize": 3, "elinewidth": 1},
    )
    unit = unit_of(column.metric or "")
    for position, value, bar in zip(positions, values, bars, strict=True):
        text = unit.format(bar.value) if _finite(bar.value) else MISSING_TEXT
        axis.annotate(
            text,
            (value + (bar.spread or 0.0), position),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    axis.set_yticks(positions, [bar.label for bar in bars], fontsize=8)
    axis.set_xlabel(column.label, fontsize=9)
    axis.set_title(column.task, fontsize=10, loc="left")
    axis.margins(x=0.15)
    axis.spines[["top", "right"]].set_visible(False)
    return figure_svg(figure, salt)


def layer_weights(board: Leaderboard, task: str) -> dict[str, tuple[float, ...]]:
    """Learned layer weights of each upstream on ``task``; upstreams without any, or with one
    layer (its weight is 1: nothing to see), are left out."""
    weights = {}
    for upstream in board.upstreams:
        result = board.result(upstream, task)
        if result is not None and result.layer_weights and len(result.layer_weights) > 1:
            weights[upstream] = result.layer_weights
    return weights


def layer_heatmap_svg(task: str, weights: dict[str, tuple[float, ...]], salt: str) -> str:
    from matplotlib.figure import Figure

    labels = list(weights)
    layers = max(len(w) for w in weights.values())
    matrix = np.full((len(labels), layers), np.nan)
    for row, label in enumerate(labels):
        matrix[row, : len(weights[label])] = weights[label]
    figure = Figure(figsize=(min(2.0 + 0.45 * layers, 14.0), 0.45 * len(labels) + 1.5))
    axis = figure.subplots()
    image = axis.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap="viridis", vmin=0.0)
    figure.colorbar(image, ax=axis, label="softmax weight", fraction=0.05)
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set_xticks(range(layers), [str(i) for i in range(layers)], fontsize=7)
    axis.set_xlabel("layer (0: the first hidden state the upstream returns)", fontsize=8)
    axis.set_title(f"{task}: learned layer weights", fontsize=10, loc="left")
    if layers <= ANNOTATE_MAX_LAYERS:
        _annotate_cells(axis, matrix)
    return figure_svg(figure, salt)


def _annotate_cells(axis: object, matrix: np.ndarray) -> None:
    top = np.nanmax(matrix) if np.isfinite(matrix).any() else 1.0
    for (row, layer), weight in np.ndenumerate(matrix):
        if math.isfinite(weight):
            colour = "black" if weight > 0.6 * top else "white"
            axis.text(
                layer, row, f"{weight:.2f}", ha="center", va="center", fontsize=6, color=colour
            )


def figure_svg(figure: object, salt: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), text kept as text, no timestamp."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
