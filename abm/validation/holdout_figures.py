"""The holdout's figures and the table of what they plot.

Every figure is drawn from one long table (``series_table``), the CSV written beside it,
so the plotted numbers and the file are the same numbers: for every panel and month,
the median and 90 % band over all runs of all members (pooled) and each member's median.
Months run from January of the scenario's start year; the licence months are shaded.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abm.batch.tables import format_number  # noqa: E402
from abm.figures import save_figure  # noqa: E402
from abm.validation.holdout import HoldoutRun  # noqa: E402
from abm.validation.report import _dates  # noqa: E402
from abm.validation.scoring import BAND  # noqa: E402

HEAVY = ("Dy", "Tb")  # the licensed heavy rare earths whose prices the first figure shows
LIGHT = ("Nd", "Pr")  # the unlicensed magnet elements of the last figure
MAGNET_USER_REGIONS = ("JP", "EU", "US")
POOLED = "all"  # the member column of the pooled rows
SERIES_COLUMNS = ["figure", "row", "column", "unit", "month", "date", "member", "median", "low", "high"]
DPI = 200
MAX_TICKS = 6  # date ticks per panel at most


@dataclass(frozen=True)
class Panel:
    """One panel of a figure: the figure's name, the panel's row and column labels, the
    unit and scale of its axis, and ``values``, the monthly series [M] it takes from a run."""

    figure: str
    row: str
    column: str
    unit: str
    log: bool
    values: Callable[[HoldoutRun], np.ndarray]


def _column(attribute: str, index: int, run: HoldoutRun) -> np.ndarray:
    return getattr(run, attribute)[:, index]


def _price_ratio(index: int, run: HoldoutRun) -> np.ndarray:
    return run.world_price[:, index] / run.nation_price[:, index]


def price_panels(figure: str, elements: tuple[str, ...], run: HoldoutRun, nation: str) -> list[Panel]:
    """Rows: each of ``elements`` the run has; columns: the oxide price outside ``nation``
    (the world market), inside it, and their ratio."""
    panels = []
    for element in (e for e in elements if e in run.elements):
        k = run.elements.index(element)
        panels += [
            Panel(figure, element, f"outside {nation} (world market)", "USD/kg", True, partial(_column, "world_price", k)),
            Panel(figure, element, f"inside {nation}", "USD/kg", True, partial(_column, "nation_price", k)),
            Panel(figure, element, f"ratio outside / inside {nation}", "ratio", False, partial(_price_ratio, k)),
        ]
    return panels


def export_panels(figure: str, run: HoldoutRun) -> list[Panel]:
    """Rows: the licensed elements; columns: the licensed stages (``HoldoutRun.exports``)."""
    return [
        Panel(figure, element, stage, "t oxide/month", False, partial(_column, "exports", k))
        for k, (element, stage) in enumerate(run.export_columns)
    ]


def shortfall_panels(figure: str, run: HoldoutRun) -> list[Panel]:
    """One panel per region of ``MAGNET_USER_REGIONS`` the run has: its magnet shortfall."""
    return [
        Panel(figure, "magnet users", region, "t magnets/month", False,
              partial(_column, "magnet_shortfall", run.regions.index(region)))
        for region in MAGNET_USER_REGIONS if region in run.regions
    ]


@dataclass(frozen=True)
class Figure:
    """One figure: its name (the file's suffix), title and panels."""

    name: str
    title: str
    panels: list[Panel]


def holdout_figures(run: HoldoutRun, nation: str) -> list[Figure]:
    """The four figures for runs shaped like ``run``; a figure with no panel (none of its
    elements or regions in the model) is left out."""
    heavy, light = price_panels("prices_dy_tb", HEAVY, run, nation), price_panels("prices_nd_pr", LIGHT, run, nation)
    figures = [
        Figure("prices_dy_tb", f"{_names(heavy)} oxide prices outside and inside {nation}", heavy),
        Figure("exports", f"{nation}'s exports of the licensed products: t of each element's oxide in them, by stage",
               export_panels("exports", run)),
        Figure("shortfall", "Magnets that magnet users needed and did not get, by region",
               shortfall_panels("shortfall", run)),
        Figure("prices_nd_pr", f"{_names(light)} oxide prices outside and inside {nation} (not licensed)", light),
    ]
    return [figure for figure in figures if figure.panels]


def _names(panels: list[Panel]) -> str:
    return " and ".join(dict.fromkeys(p.row for p in panels))


def series_table(panels: list[Panel], runs: dict[str, list[HoldoutRun]], start_year: int) -> pd.DataFrame:
    """What the figures plot, one row per (panel, month, member): columns
    ``SERIES_COLUMNS``. Member ``POOLED`` has the median and the 5 % and 95 % points over
    every run of every member; each member's rows have its median over its runs (low and
    high NaN). ``date`` is the month as ``YYYY-MM``."""
    frames = []
    for panel in panels:
        by_member = {name: np.stack([panel.values(run) for run in member]) for name, member in runs.items()}  # [N, M]
        pooled = np.concatenate(list(by_member.values()))
        low, median, high = np.percentile(pooled, [BAND[0], 50.0, BAND[1]], axis=0)
        rows = [(POOLED, median, low, high)]
        rows += [(name, np.median(values, axis=0), np.nan, np.nan) for name, values in by_member.items()]
        months = np.arange(pooled.shape[1])
        dates = _dates(start_year, len(months)).astype(str)
        for member, mid, lo, hi in rows:
            frames.append(pd.DataFrame({
                "figure": panel.figure, "row": panel.row, "column": panel.column, "unit": panel.unit,
                "month": months, "date": dates, "member": member, "median": mid, "low": lo, "high": hi,
            }))
    return pd.concat(frames, ignore_index=True)[SERIES_COLUMNS]


def _shade(ax, windows: tuple[tuple[int, int], ...], start_year: int) -> None:
    for k, (first, end) in enumerate(windows):
        edges = _dates(start_year, end + 1)[[first, end]].astype("datetime64[D]")
        ax.axvspan(edges[0], edges[1], color="tab:orange", alpha=0.12, label="licence in force" if k == 0 else None)


def _draw_panel(ax, data: pd.DataFrame, panel: Panel, windows: tuple[tuple[int, int], ...], start_year: int) -> None:
    pooled = data[data["member"] == POOLED]
    dates = _dates(start_year, len(pooled)).astype("datetime64[D]")
    _shade(ax, windows, start_year)
    ax.fill_between(dates, pooled["low"], pooled["high"], color="tab:blue", alpha=0.25,
                    label="90 % band, all runs (5-95 %)")
    members = [m for m in dict.fromkeys(data["member"]) if m != POOLED]
    for k, member in enumerate(members):
        ax.plot(dates, data.loc[data["member"] == member, "median"], color="0.35", lw=0.7, alpha=0.8,
                label="median of each member" if k == 0 else None)
    ax.plot(dates, pooled["median"], color="tab:blue", lw=1.8, label="median, all runs")
    if panel.log:  # plain numbers at 1, 2 and 5 of each decade
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda value, _: format_number(value)))
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_title(f"{panel.row}, {panel.column}", fontsize=9)
    ax.set_ylabel(panel.unit)
    ax.grid(alpha=0.3, which="both")
    locator = mdates.MonthLocator(interval=max(1, math.ceil(len(dates) / MAX_TICKS)))
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def plot_figure(
    table: pd.DataFrame, figure_spec: Figure, windows: tuple[tuple[int, int], ...], start_year: int, path: Path
) -> None:
    """``figure_spec`` drawn from ``series_table`` rows: a grid of the panels' rows by their columns
    (as many as the panels name; a (row, column) without a panel is left blank), a legend
    in the first panel, PNG at ``DPI``."""
    panels = figure_spec.panels
    rows = list(dict.fromkeys(p.row for p in panels))
    columns = list(dict.fromkeys(p.column for p in panels))
    figure, grid = plt.subplots(len(rows), len(columns), figsize=(4.6 * len(columns), 3.2 * len(rows) + 0.6),
                                sharex=True, squeeze=False)
    placed = {(rows.index(p.row), columns.index(p.column)): p for p in panels}
    for (i, j), ax in np.ndenumerate(grid):
        panel = placed.get((i, j))
        if panel is None:
            figure.delaxes(ax)
            continue
        data = table[(table["figure"] == panel.figure) & (table["row"] == panel.row) & (table["column"] == panel.column)]
        _draw_panel(ax, data, panel, windows, start_year)
        ax.xaxis.set_tick_params(labelbottom=True)
    figure.axes[0].legend(fontsize=7)
    figure.suptitle(figure_spec.title)
    save_figure(figure, path, dpi=DPI)
