"""Figures of one run, drawn from its tidy series with matplotlib (no display needed)."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from abm.output import atomic_write  # noqa: E402


def element_grid(series: pd.DataFrame, variable: str, panel: tuple[float, float] = (4.4, 3.5)):
    """The rows of ``variable`` in a tidy ``series``, its elements in order, and a figure
    with one panel per element (``panel``: width and height, inches), as near square as the count allows (six elements: 2 x 3,
    nine: 3 x 3; the grid follows the elements of the data, never a fixed count):
    ``(data, elements, figure, axes)`` with ``axes`` flat, row by row, one per element;
    the grid's spare panels are removed and the lowest panel of each column is labelled
    with the month axis."""
    data = series[series["variable"] == variable]
    elements = list(dict.fromkeys(data["element"].astype(str)))
    columns = max(1, math.ceil(math.sqrt(len(elements))))
    rows = max(1, math.ceil(len(elements) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(panel[0] * columns, panel[1] * rows), sharex=True, squeeze=False)
    axes = grid.ravel()
    for spare in axes[len(elements):]:
        figure.delaxes(spare)
    used = axes[: len(elements)]
    for column in range(columns):
        below = used[column::columns]
        if len(below):
            below[-1].set_xlabel("month")
            below[-1].xaxis.set_tick_params(labelbottom=True)
    return data, elements, figure, used


PRINT_DPI = 200  # figures fit for a paper: 200 dpi PNG, with an SVG copy


def save_figure(figure, path: Path, dpi: int = 110, svg: bool = False) -> list[Path]:
    """Lay out, write atomically as ``dpi`` PNG at ``path`` (and, with ``svg``, as SVG
    beside it), free the figure; the paths written."""
    figure.tight_layout()
    written = [path]
    atomic_write(path, lambda handle: figure.savefig(handle, dpi=dpi, format="png"), binary=True)
    if svg:
        written.append(path.with_suffix(".svg"))
        atomic_write(written[-1], lambda handle: figure.savefig(handle, format="svg"), binary=True)
    plt.close(figure)
    return written


def plot_prices(series: pd.DataFrame, path: Path) -> None:
    """Price of each element in each zone (exporters' domestic markets and the world), log scale."""
    data, elements, figure, axes = element_grid(series, "price")
    for ax, element in zip(axes, elements, strict=True):
        table = data[data["element"] == element].pivot(index="step", columns="region", values="value")
        for zone in table.columns:
            ax.plot(table.index, table[zone], label=str(zone), lw=1.4 if zone == "world" else 1.0)
        ax.set_yscale("log")
        ax.set_title(f"{element} oxide")
        ax.set_ylabel("USD/kg")
    axes[0].legend(fontsize=8)
    save_figure(figure, path)


def plot_supply_by_origin(series: pd.DataFrame, path: Path) -> None:
    """Oxide sold by sellers in each region, stacked, t/month."""
    data, elements, figure, axes = element_grid(series, "supply_by_origin")
    for ax, element in zip(axes, elements, strict=True):
        # Step 0 is the initial state, before any month has traded.
        table = data[data["element"] == element].pivot(index="step", columns="region", values="value").loc[1:]
        table = table.loc[:, table.sum() > 0]
        ax.stackplot(table.index, table.T.values, labels=[str(c) for c in table.columns])
        ax.set_title(f"{element} oxide sold, by origin")
        ax.set_ylabel("t/month")
    axes[0].legend(fontsize=8, loc="lower left")
    save_figure(figure, path)


def plot_shortfall(series: pd.DataFrame, path: Path) -> None:
    """Unmet demand of each importing region, t/month."""
    data, elements, figure, axes = element_grid(series, "shortfall")
    for ax, element in zip(axes, elements, strict=True):
        table = data[data["element"] == element].pivot(index="step", columns="region", values="value")
        for region in table.columns:
            ax.plot(table.index, table[region], label=str(region))
        ax.set_title(f"{element} shortfall")
        ax.set_ylabel("t/month")
    axes[0].legend(fontsize=8)
    save_figure(figure, path)
