"""Matplotlib figures for the report pages, laid out from measured text and drawn once.

``bbox_inches="tight"`` and matplotlib's layout engines draw a figure twice: once to find where
its text ends, once for real. Here the margins are sized from the text itself (tick labels, axis
labels, titles, an outside legend), measured with the font's metrics, and the one draw writes
the SVG. The figures are made outside pyplot (no global state to close, pyplot never imported),
and log axes are labelled in plain numbers, not mathtext. report.html of a default 2 s run, in a
process of its own on the 2-vCPU VM: 1.75 s before, 1.40 s so; it is paid at the end of every run.
"""
from __future__ import annotations

import io
from typing import Any

PAD_PT = 4.0
"""Room between a text's edge and the figure's edge or the next axes."""
TICK_PT = 3.5 + 3.5
"""A tick's length plus the gap to its label (matplotlib's defaults)."""
LABEL_PAD_PT = 4.0
"""The gap between tick labels and the axis label (matplotlib's default labelpad)."""
OUTSIDE_X = 1.01
"""Where an outside legend starts, in axes widths: just right of the axes."""
OUTSIDE_ROWS = 12
"""Entries per column of an outside legend (a stack of many strategies gets more columns)."""


def new_figure(width_in: float, height_in: float) -> Any:
    """A figure at 72 dpi, so a point is a pixel and the SVG's sizes read as points."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=72)


def figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    """One axes with a title, axis labels and a light grid."""
    fig = new_figure(6.4, 3.4)
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def legend(ax: Any, ncol: int = 1, outside: bool = False) -> None:
    """A legend when something is labelled (a run that never streamed draws nothing, and
    matplotlib warns about an empty legend); ``outside`` the axes, right of them, so it covers
    no data (for plots with a line per process)."""
    labels = ax.get_legend_handles_labels()[1]
    if labels:
        if outside:  # a dozen entries a column: a long legend grows sideways, not past the axes
            ax.legend(fontsize=7, ncol=max(ncol, -(-len(labels) // OUTSIDE_ROWS)), loc="upper left",
                      bbox_to_anchor=(OUTSIDE_X, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=8, ncol=ncol)


def plain(v: float) -> str:
    """A tick value as people write it: 200, 1,000, 100,000 (0.5 below one)."""
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def log_axis(axis: Any) -> None:
    """A log axis labelled 200, 500, 1,000 (plain numbers, not mathtext powers of ten: easier to
    read as microseconds, and each mathtext label costs a parse). Which ticks get a label is
    matplotlib's choice (the minor ones only where the axis spans few decades)."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            return plain(x) if super().__call__(x, pos) else ""

    axis.set_major_formatter(Plain())
    axis.set_minor_formatter(Plain(labelOnlyBase=False))


def svg(fig: Any) -> str:
    """The figure laid out and drawn once, as SVG to inline in HTML (no XML prologue)."""
    fit(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _extent(artists: Any, renderer: Any, side: str) -> float:
    """The largest width (``side="w"``) or height of ``artists``, in points."""
    boxes = [a.get_window_extent(renderer) for a in artists]
    return max((b.width if side == "w" else b.height for b in boxes), default=0.0)


def _shown(*texts: Any) -> list[Any]:
    return [t for t in texts if t.get_visible() and t.get_text()]


def _tick_labels(axis: Any) -> list[Any]:
    return _shown(*axis.get_majorticklabels(), *axis.get_minorticklabels())


def fit(fig: Any) -> None:
    """Set the margins of a figure whose axes stand in one column (every report figure) so its
    text fits: left for the widest y tick label and the y label, bottom for the lowest axes' x
    labels, top for the title, right for an outside legend (or a last x tick label's overhang),
    and between stacked axes for what stands between them."""
    from matplotlib.backends.backend_agg import RendererAgg

    axes = fig.axes
    if not axes:
        return
    width, height = fig.bbox.width, fig.bbox.height
    renderer = RendererAgg(int(width), int(height), fig.dpi)  # measures text; nothing is drawn on it
    left = right = 0.0
    for ax in axes:
        left = max(left, _extent(_tick_labels(ax.yaxis), renderer, "w") + TICK_PT
                   + _extent(_shown(ax.yaxis.label), renderer, "w") + LABEL_PAD_PT)
        right = max(right, _extent(_tick_labels(ax.xaxis), renderer, "w") / 2)
        leg = ax.get_legend()
        if leg is not None and leg.get_bbox_to_anchor().x0 > ax.bbox.x1:
            right = max(right, _extent([leg], renderer, "w") + (OUTSIDE_X - 1) * ax.bbox.width)

    def below(ax: Any) -> float:  # x tick labels and the x label under an axes
        ticks = _extent(_tick_labels(ax.xaxis), renderer, "h")
        label = _extent(_shown(ax.xaxis.label), renderer, "h")
        return (ticks + TICK_PT if ticks else 0.0) + (label + LABEL_PAD_PT if label else 0.0)

    def above(ax: Any) -> float:  # the title over an axes
        title = _extent(_shown(ax.title), renderer, "h")
        return title + 6.0 if title else 0.0  # 6 pt: matplotlib's title pad

    top = above(axes[0]) + PAD_PT
    bottom = below(axes[-1]) + PAD_PT
    gap = max([below(a) + above(b) for a, b in zip(axes, axes[1:])], default=0.0) + 2 * PAD_PT
    n = len(axes)
    each = max(height - top - bottom - (n - 1) * gap, 1.0) / n
    fig.subplots_adjust(left=min((left + PAD_PT) / width, 0.45), right=max(1 - (right + PAD_PT) / width, 0.55),
                        bottom=min(bottom / height, 0.45), top=max(1 - top / height, 0.55), hspace=gap / each)
