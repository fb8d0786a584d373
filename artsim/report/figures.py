"""The report's figures: matplotlib drawn off-screen (the Agg canvas, no pyplot and its global
state) into PNG data: URIs, so the document needs nothing from outside to show them. The same
data gives the same bytes: PNG from Agg carries no date, and the `Software` tag is dropped."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 6.4, 3.6, 100


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _new(height: float = HEIGHT) -> tuple[Figure, object]:
    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _finish(figure: Figure) -> str:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return png_uri(buffer.getvalue())


def curves(series: Mapping[str, pd.DataFrame], x: str, title: str, ylabel: str = "") -> str:
    """Lines, one per name, each a table with columns `x` and `y`."""
    figure, axes = _new()
    for name, table in series.items():
        axes.plot(table[x], table["y"], marker="o", markersize=3, label=name)
    axes.set(title=title, xlabel=x, ylabel=ylabel)
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend(fontsize="small")
    return _finish(figure)


def grouped_bars(
    table: pd.DataFrame, label: str, values: Sequence[str], title: str, xlim: tuple[float, float] | None = None
) -> str:
    """Horizontal bars: one group per row of `table` (named by `label`), one bar per column of `values`."""
    rows = len(table)
    figure, axes = _new(max(2.0, 0.9 + rows * (0.22 + 0.14 * len(values))))
    positions = np.arange(rows)
    step = 0.8 / len(values)
    for i, column in enumerate(values):
        axes.barh(positions + (i - (len(values) - 1) / 2) * step, table[column], height=step, label=column)
    axes.set_yticks(positions, [str(v) for v in table[label]], fontsize="small")
    axes.invert_yaxis()
    axes.set(title=title, xlim=xlim)
    axes.grid(axis="x", alpha=0.3)
    if len(values) > 1:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    return _finish(figure)


def heatmap(matrix: pd.DataFrame, title: str, xlabel: str = "", ylabel: str = "", integers: bool = False) -> str:
    """A labelled matrix with each cell's value written in it."""
    figure, axes = _new(max(3.0, 1.2 + 0.35 * len(matrix)))
    values = matrix.to_numpy(dtype=float)
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    axes.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right", fontsize="small")
    axes.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index], fontsize="small")
    middle = np.nanmean(values) if values.size else 0.0
    for (row, column), value in np.ndenumerate(values):
        text = f"{value:.0f}" if integers else f"{value:.2f}"
        axes.text(column, row, text, ha="center", va="center", fontsize=7, color="white" if value < middle else "black")
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    figure.colorbar(image, ax=axes)
    return _finish(figure)


def scatter(table: pd.DataFrame, x: str, y: str, colour_by: str, title: str) -> str:
    """Points of (x, y), one colour per value of `colour_by`, with the diagonal y = x."""
    figure, axes = _new(4.2)
    for value, group in table.groupby(colour_by, sort=True):
        axes.scatter(group[x], group[y], s=12, alpha=0.7, label=f"{colour_by} = {value}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    axes.set(title=title, xlabel=x, ylabel=y, xlim=(0, 1), ylim=(0, 1))
    axes.set_aspect("equal")
    axes.legend(fontsize="small")
    return _finish(figure)


def precision_recall(curves_by_scorer: Mapping[str, pd.DataFrame], levels: Sequence[float], title: str) -> str:
    """Precision against recall, one line per scorer, with the precision levels of the thresholds."""
    figure, axes = _new(4.0)
    for name, table in curves_by_scorer.items():
        axes.plot(table["recall"], table["precision"], label=name, linewidth=1.2)
    for level in levels:
        axes.axhline(level, color="grey", linewidth=0.6, linestyle=":")
    axes.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower left")
    return _finish(figure)
