"""Matplotlib figures of one model as it runs: what the browser app draws each month.

Every function takes a ``RareEarthModel`` (read through its DataCollector history and
this month's ``trade``/``restricted`` arrays) and returns a ``matplotlib.figure.Figure``
built without pyplot, so figures from many browser sessions never share state. Units
are in the axis labels: prices USD/kg, flows t/month (t REO), stocks t, tension 0-1.
The x axis counts months run since January of the scenario's start year (record k of
the history, the state after month k-1 has traded, sits at k), the unit of the quota-cut
controls.
"""

import csv
from importlib import resources

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from abm.model import WORLD, RareEarthModel

SIZE = (5.8, 3.5)  # inches at DPI: fits one tile of Mesa's two-column grid
DPI = 100
RESTRICTED_COLOUR = "#d62728"
QUOTA_SHADE = "#f4b6b6"
NOW_MARKER = {"marker": "o", "markevery": [-1], "markersize": 3.5}  # a dot on this month's value

# One colour per region in every chart, so "CN" is the same red-brown everywhere.
REGION_COLOURS = {
    "CN": "#8c2d04", "US": "#1f77b4", "AU": "#ff7f0e", "MM": "#9467bd",
    "MY": "#2ca02c", "JP": "#e377c2", "EU": "#17becf", "RW": "#7f7f7f", WORLD: "#000000",
}
PAIR_COLOURS = ("#1f77b4", "#e377c2", "#17becf", "#ff7f0e", "#2ca02c", "#9467bd")

# Schematic map positions (roughly longitude, latitude) for the trade network.
POSITIONS = {
    "US": (-100.0, 38.0), "EU": (10.0, 50.0), "RW": (-45.0, -20.0), "CN": (105.0, 36.0),
    "JP": (155.0, 52.0), "MM": (75.0, 8.0), "MY": (112.0, -10.0), "AU": (140.0, -36.0),
}


def region_names() -> dict[str, str]:
    """Region code -> name, from the calibration table abm/data/regions.csv."""
    with resources.files("abm.data").joinpath("regions.csv").open(encoding="utf-8") as handle:
        return {row["region"]: row["name"] for row in csv.DictReader(handle)}


def history(model: RareEarthModel, name: str) -> np.ndarray:
    """What DataCollector recorded of ``name``: [steps, ...], step 0 the initial state."""
    return np.asarray(model.datacollector.model_vars[name], dtype=float)


def month_label(model: RareEarthModel, month: int | None = None) -> str:
    """'month 14 (Mar 2026)' for model month ``month`` (default: the current one)."""
    month = model.month if month is None else month
    year, index = divmod(month, 12)
    name = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[index]
    return f"month {month} ({name} {model.spec.start_year + year})"


def quota_months(model: RareEarthModel, element: str) -> np.ndarray:
    """[steps] bool: some exporter held an export quota on ``element`` that month."""
    quota = history(model, "quota")[:, model.elements.index(element), :]
    return np.isfinite(quota).any(axis=1)


def _figure() -> tuple[Figure, object]:
    # Fixed margins, legend to the right: half the drawing time of a constrained layout,
    # which matters as every chart is redrawn every month.
    figure = Figure(figsize=SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.12, right=0.74, bottom=0.14, top=0.91)
    return figure, figure.add_subplot()


def x_limit(model: RareEarthModel) -> int:
    """Right end of the month axis: the next whole year after this month (at least two
    years, at most the horizon), so early months are not a sliver of a 20-year axis."""
    return int(min(model.spec.horizon_months, max(24, 12 * (model.month // 12 + 1))))


def _months_axis(ax, model: RareEarthModel, element: str | None = None) -> None:
    """Months on x up to the next whole year, a line at this month, and the months with
    an export quota on ``element`` shaded."""
    ax.set_xlim(0, x_limit(model))
    ax.set_xlabel(f"months since Jan {model.spec.start_year}")
    ax.axvline(model.month, color="#999999", lw=0.8, ls=":")
    if element is not None:
        active = quota_months(model, element)
        # Record k holds month k-1 (months run so far: k), so a quota recorded at k spans [k-1, k].
        for start, stop in _runs(active):
            ax.axvspan(start - 1, stop - 1, color=QUOTA_SHADE, alpha=0.5, lw=0, zorder=0)
    ax.grid(True, alpha=0.3)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)) index ranges where ``flags`` is true."""
    edges = np.diff(np.concatenate(([0], flags.astype(int), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _legend(ax, extra: list | None = None) -> None:
    """Legend to the right of the axes, where it never hides the data."""
    handles, labels = ax.get_legend_handles_labels()
    for handle, label in extra or []:
        handles.append(handle)
        labels.append(label)
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)


def _quota_handle() -> tuple[Patch, str]:
    return Patch(color=QUOTA_SHADE, alpha=0.5), "export quota in force"


def price_figure(model: RareEarthModel, element: str, log: bool = True) -> Figure:
    """Price of ``element`` in each exporter's domestic zone against the world market."""
    e = model.elements.index(element)
    price = history(model, "price")[:, e, :]  # [T, Z]
    figure, ax = _figure()
    months = np.arange(price.shape[0])
    for z, zone in enumerate(model.price_zones):
        label = "world market" if zone == WORLD else f"{zone} domestic"
        ax.plot(
            months, price[:, z], label=label, color=REGION_COLOURS.get(zone),
            lw=2.0 if zone == WORLD else 1.2, ls="-" if zone == WORLD else "--", **NOW_MARKER,
        )
    if log:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_major_formatter(plain)
        # Label the 20, 30, ... ticks only when the prices span less than a decade.
        low, high = np.nanmin(price), np.nanmax(price)
        ax.yaxis.set_minor_formatter(plain if high < 10 * low else NullFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel(f"{element} oxide price (USD/kg{', log' if log else ''})")
    ax.set_title(f"{element} price: domestic zones vs world", fontsize=10)
    _months_axis(ax, model, element)
    _legend(ax, [_quota_handle()])
    return figure


def supply_figure(model: RareEarthModel, element: str) -> Figure:
    """Oxide of ``element`` sold by sellers in each region, stacked."""
    e = model.elements.index(element)
    sold = history(model, "supply_by_origin")[:, e, :]  # [T, R]
    figure, ax = _figure()
    # Step 0 is the initial state, before any month has traded.
    months = np.arange(1, sold.shape[0])
    sold = sold[1:]
    used = [r for r in range(len(model.regions)) if sold[:, r].sum() > 0]
    if used:
        ax.stackplot(
            months, sold[:, used].T, labels=[model.regions[r] for r in used],
            colors=[REGION_COLOURS.get(model.regions[r]) for r in used], alpha=0.85,
        )
    ax.set_ylabel(f"{element} oxide sold (t/month)")
    ax.set_title(f"{element} supply by origin", fontsize=10)
    ax.set_ylim(bottom=0)
    _months_axis(ax, model, element)
    _legend(ax, [_quota_handle()])
    return figure


def _by_importer(model: RareEarthModel, name: str, element: str, ylabel: str, title: str) -> Figure:
    e = model.elements.index(element)
    values = history(model, name)[:, e, :]  # [T, importing regions]
    figure, ax = _figure()
    months = np.arange(values.shape[0])
    for r, region in enumerate(model.importing_regions):
        ax.plot(months, values[:, r], label=region, color=REGION_COLOURS.get(region), lw=1.3, **NOW_MARKER)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    _months_axis(ax, model, element)
    _legend(ax, [_quota_handle()])
    return figure


def shortfall_figure(model: RareEarthModel, element: str) -> Figure:
    """Unmet demand for ``element`` of each importing region."""
    return _by_importer(
        model, "shortfall", element, f"{element} shortfall (t/month)", f"{element} shortfall by importing region"
    )


def stockpile_figure(model: RareEarthModel, element: str) -> Figure:
    """Stock of ``element`` held by each importing region's manufacturers."""
    return _by_importer(
        model, "stockpile", element, f"{element} stock held (t)", f"{element} stockpiles by importing region"
    )


def tension_figure(model: RareEarthModel) -> Figure:
    """Bilateral tension of each pair, with the thresholds where restrictions start."""
    tension = history(model, "tension")  # [T, P]
    figure, ax = _figure()
    months = np.arange(tension.shape[0])
    for p, pair in enumerate(model.tension_pairs):
        ax.plot(months, tension[:, p], label=pair, color=PAIR_COLOURS[p % len(PAIR_COLOURS)], lw=1.3, **NOW_MARKER)
    rules = model.spec.tension
    ax.axhline(rules.quota_threshold, color="#e6a100", lw=1, ls="--", label="quota threshold")
    ax.axhline(rules.ban_threshold, color=RESTRICTED_COLOUR, lw=1, ls="--", label="ban threshold")
    ax.set_ylim(0, 1)
    ax.set_ylabel("tension (index 0-1)")
    ax.set_title("Bilateral tension (importer-exporter pairs)", fontsize=10)
    _months_axis(ax, model)
    _legend(ax)
    return figure


def trade_edges(model: RareEarthModel, element: str) -> list[tuple[str, str, float, bool]]:
    """This month's cross-border links for ``element``: (from, to, t/month, restricted),
    every link with trade and every link closed by a ban or a binding quota."""
    e = model.elements.index(element)
    trade, restricted = model.trade[e], model.restricted[e]
    edges = []
    for a, source in enumerate(model.regions):
        for b, destination in enumerate(model.regions):
            if a == b:
                continue
            flow = float(trade[a, b])
            if flow > 1e-6 or restricted[a, b]:
                edges.append((source, destination, flow, bool(restricted[a, b])))
    return edges


def trade_network_figure(model: RareEarthModel, element: str) -> Figure:
    """Nations as nodes, this month's flows of ``element`` as arrows whose width is the
    tonnage; links closed by a ban or a binding quota dashed red."""
    e = model.elements.index(element)
    edges = trade_edges(model, element)
    figure = Figure(figsize=SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92)
    ax = figure.add_subplot()
    widest = max((flow for *_, flow, _ in edges), default=0.0)
    sold = model.supply_by_origin[e]
    biggest_seller = max(float(sold.max()), 1e-9)
    for region, (x, y) in POSITIONS.items():
        r = model.regions.index(region)
        size = 250 + 1100 * np.sqrt(max(float(sold[r]), 0.0) / biggest_seller)
        ax.scatter(
            [x], [y], s=size, color=REGION_COLOURS.get(region), zorder=3, edgecolors="white", linewidths=1.5
        )
        ax.annotate(region, (x, y), ha="center", va="center", fontsize=8, color="white", weight="bold", zorder=4)
    for source, destination, flow, restricted in edges:
        width = 0.6 + 7.0 * flow / widest if widest > 0 else 0.6
        colour = RESTRICTED_COLOUR if restricted else "#4a6fa5"
        arrow = FancyArrowPatch(
            POSITIONS[source], POSITIONS[destination], connectionstyle="arc3,rad=0.18",
            arrowstyle="-|>", mutation_scale=8 + width, lw=width, color=colour,
            ls=(0, (4, 2)) if restricted else "-", alpha=0.8, shrinkA=14, shrinkB=14, zorder=2,
        )
        arrow.set_gid(f"{source}->{destination}{' restricted' if restricted else ''}")
        ax.add_patch(arrow)
    ax.set_xlim(-130, 170)
    ax.set_ylim(-50, 70)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    total = sum(flow for *_, flow, _ in edges)
    ax.set_title(
        f"{element} trade, {month_label(model)}: {total:,.0f} t/month cross-border", fontsize=10
    )
    ax.legend(
        handles=[
            Line2D([], [], color="#4a6fa5", lw=3, label=f"flow (widest {widest:,.0f} t/month)"),
            Line2D([], [], color=RESTRICTED_COLOUR, lw=2, ls=(0, (4, 2)), label="closed by quota or ban"),
            Line2D([], [], marker="o", ls="", color="#7f7f7f", markersize=8, label="node: size = sales"),
        ],
        loc="lower left", fontsize=7, framealpha=0.85,
    )
    return figure
