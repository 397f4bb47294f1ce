"""Figures of what each policy buys (``abm.batch.effects.policy_effects``), one panel per
design point, as 200 dpi PNG and SVG:

- ``effects.png``: demand foregone outside the exporter that each policy avoided, mean
  over pairs and its 95 % BCa interval (kt REO);
- ``cost_resilience.png``: each policy's mean cost (bn USD) against the demand foregone
  it avoided (kt REO), with the policies no other beats on both (cheaper and avoiding
  more) joined as the Pareto front of that design point.
"""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abm.batch.effects import COST, FOREGONE, by_design_point, design_columns  # noqa: E402
from abm.figures import PRINT_DPI, save_figure  # noqa: E402

KT = 1e3  # t per kt
BN = 1e9  # USD per bn USD


def point_label(point: dict) -> str:
    """A design point in words: ``shock from month 24 for 12 months, quota cut 0.4``."""
    names = {"shock_start": "shock from month {}", "shock_months": "for {} months", "quota_cut": "quota cut {:g}",
             "horizon_months": "over {} months"}
    parts = []
    for column, value in point.items():
        name = column.removeprefix("factor.")
        template = names.get(name)
        parts.append(template.format(value) if template else f"{name} = {value}")
    return ", ".join(parts) or "all runs"


def pareto_front(cost: np.ndarray, avoided: np.ndarray) -> np.ndarray:
    """[n] bool: the policies no other dominates (at most the cost and at least the
    avoided loss, better in one). ``cost``, ``avoided`` [n]."""
    cost, avoided = np.asarray(cost, dtype=float), np.asarray(avoided, dtype=float)
    better_or_equal = (cost[None, :] <= cost[:, None]) & (avoided[None, :] >= avoided[:, None])
    strictly = (cost[None, :] < cost[:, None]) | (avoided[None, :] > avoided[:, None])
    return ~(better_or_equal & strictly).any(axis=1)


def _panels(effects: pd.DataFrame):
    """(figure, [(axis, point, rows)]) with one panel per design point, three across."""
    points = list(by_design_point(effects, design_columns(effects)))
    across = min(3, len(points))
    down = math.ceil(len(points) / across)
    figure, axes = plt.subplots(down, across, figsize=(5.2 * across, 4.2 * down), squeeze=False)
    for ax in axes.flat[len(points):]:
        ax.set_visible(False)
    panels = []
    for ax, (point, rows) in zip(axes.flat, points, strict=False):
        panels.append((ax, point, rows))
    return figure, panels


def plot_effects(effects: pd.DataFrame, path: Path) -> list[Path]:
    """``effects.png`` (and .svg): demand foregone avoided per policy, a panel per point."""
    figure, panels = _panels(effects)
    for ax, point, rows in panels:
        mean = rows[f"{FOREGONE}_avoided"] / KT
        errors = np.vstack([mean - rows[f"{FOREGONE}_avoided_low"] / KT, rows[f"{FOREGONE}_avoided_high"] / KT - mean])
        positions = np.arange(len(rows))
        ax.bar(positions, mean, yerr=np.clip(errors, 0, None), capsize=3, color="tab:green", label="mean, 95 % BCa CI")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(positions, rows["policy"], rotation=40, ha="right", fontsize=8)
        ax.set_title(point_label(point), fontsize=9)
        ax.set_ylabel("demand foregone avoided (kt REO)")
    panels[0][0].legend(fontsize=7)
    return save_figure(figure, path, PRINT_DPI, svg=True)


def plot_cost_resilience(effects: pd.DataFrame, path: Path) -> list[Path]:
    """``cost_resilience.png`` (and .svg): cost against demand foregone avoided, a panel
    per design point, its Pareto front joined."""
    figure, panels = _panels(effects)
    for ax, point, rows in panels:
        cost, avoided = rows[COST].to_numpy() / BN, rows[f"{FOREGONE}_avoided"].to_numpy() / KT
        front = pareto_front(cost, avoided)
        ax.scatter(cost[~front], avoided[~front], color="tab:gray", s=18, label="dominated")
        order = np.argsort(cost[front])
        ax.plot(cost[front][order], avoided[front][order], "o-", color="tab:red", ms=5, label="Pareto front")
        for x, y, name in zip(cost, avoided, rows["policy"], strict=True):
            ax.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(point_label(point), fontsize=9)
        ax.set_xlabel("policy cost over the run (bn USD)")
        ax.set_ylabel("demand foregone avoided (kt REO)")
    panels[0][0].legend(fontsize=7)
    return save_figure(figure, path, PRINT_DPI, svg=True)
