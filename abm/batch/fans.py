"""Price fan charts of a batch, one figure per design point (never pooled across points):
per element, the world and exporter-zone oxide price of one policy's runs, median with
50 % and 90 % bands, on calendar dates, with the point's shock window shaded; 200 dpi
PNG and SVG (``price_fan_<policy>.png`` for a store of one point, else
``price_fan_<policy>_<k>.png`` for the k-th point, 1-based, in design order). A store of
more than ``FAN_POINTS`` design points gets none: a fan pooled over points would mix them,
and one per point would not fit the repository's budget for results."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from abm.batch.effect_figures import point_label  # noqa: E402
from abm.batch.effects import by_design_point, design_columns  # noqa: E402
from abm.batch.experiment import NO_POLICY  # noqa: E402
from abm.figures import PRINT_DPI, element_grid, save_figure  # noqa: E402

ZONES = (("world", "tab:red"), ("CN", "tab:blue"))
FAN_POINTS = 6  # the most design points that get a fan chart each
PANEL = (3.6, 2.8)  # inches per element's panel


def month_dates(months: np.ndarray, start_year: int) -> pd.DatetimeIndex:
    """The first day of each of ``months`` (0 = January of ``start_year``, -1 the December
    before)."""
    return pd.DatetimeIndex([pd.Timestamp(year=start_year + int(m) // 12, month=int(m) % 12 + 1, day=1) for m in months])


def too_many_points(metrics: pd.DataFrame) -> bool:
    """Whether a store has more design points than get a fan chart each."""
    return len(list(by_design_point(metrics, design_columns(metrics)))) > FAN_POINTS


def shock_window(point: dict, scenario) -> tuple[int, int] | None:
    """(first month, months) of the point's scripted quota shock: its factors, else the
    scenario's; None without one (no cut, or no months)."""
    start = point.get("factor.shock_start", scenario.shock.start if scenario is not None else None)
    months = point.get("factor.shock_months", scenario.shock.months if scenario is not None else None)
    cut = point.get("factor.quota_cut", scenario.shock.quota_cut if scenario is not None else 0.0)
    if start is None or months is None or not months or not cut:
        return None
    return int(start), int(months)


def plot_price_fans(series: pd.DataFrame, metrics: pd.DataFrame, folder: Path, scenario=None,
                    policy: str = NO_POLICY) -> list[Path]:
    """The fan charts of ``policy``'s runs, per design point of ``metrics``, into
    ``folder``; ``scenario`` (the experiment's base, or None) gives the start year and
    the shock of points that do not set them. The paths written, PNG then SVG."""
    start_year = scenario.start_year if scenario is not None else 2025
    runs = metrics[metrics["policy"] == policy]
    points = list(by_design_point(runs, design_columns(runs)))
    written = []
    if too_many_points(runs):
        return written
    for k, (point, group) in enumerate(points, start=1):
        prices = series[(series["variable"] == "price") & series["run_id"].isin(set(group["run_id"]))]
        prices, elements, figure, axes = element_grid(prices, "price", PANEL)
        window = shock_window(point, scenario)
        for ax, element in zip(axes, elements, strict=True):
            if window is not None:
                first, last = month_dates(np.array([window[0], window[0] + window[1]]), start_year)
                ax.axvspan(first, last, color="0.85", zorder=0)
            for zone, colour in ZONES:
                table = prices[(prices["element"] == element) & (prices["region"] == zone)].pivot(
                    index="step", columns="run_id", values="value")
                if table.empty:
                    continue
                q = table.quantile([0.05, 0.25, 0.5, 0.75, 0.95], axis=1).T
                dates = month_dates(q.index.to_numpy() - 1, start_year)  # step k records month k - 1
                ax.fill_between(dates, q[0.05], q[0.95], color=colour, alpha=0.15, lw=0)
                ax.fill_between(dates, q[0.25], q[0.75], color=colour, alpha=0.3, lw=0)
                ax.plot(dates, q[0.5], color=colour, lw=1.3)
            ax.set_yscale("log")
            ax.set_title(f"{element} oxide", fontsize=9)
            ax.set_ylabel("USD/kg")
            ax.set_xlabel("")
            ax.xaxis.set_major_locator(mdates.YearLocator(base=3))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        handles = [Patch(color=colour, alpha=alpha, label=f"{zone} {band}") for zone, colour in ZONES
                   if zone in set(prices["region"]) for band, alpha in (("50 % band", 0.3), ("90 % band", 0.15))]
        handles += [Patch(color="0.85", label="quota shock")] if window is not None else []
        axes[0].legend(handles=handles, fontsize=7, title="median: line", title_fontsize=7)
        figure.suptitle(f"Oxide prices, policy {policy}: {point_label(point)} ({len(group)} runs)", fontsize=10)
        name = f"price_fan_{policy}.png" if len(points) == 1 else f"price_fan_{policy}_{k}.png"
        written += save_figure(figure, folder / name, PRINT_DPI, svg=True)
    return written
