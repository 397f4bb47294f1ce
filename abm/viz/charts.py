"""Matplotlib figures of one model as it runs: what the browser app draws each month.

Every function takes a ``RareEarthModel`` (read through its DataCollector history and
this month's ``trade``/``restricted`` arrays) and returns a ``matplotlib.figure.Figure``
built without pyplot, so figures from many browser sessions never share state. Units
are in the axis labels: prices USD/kg, flows t/month (t REO), stocks t, tension 0-1.
The x axis counts months run since January of the scenario's start year (record k of
the history, the state after month k-1 has traded, sits at k), the unit of the quota-cut
controls.

The supply-chain charts (``product_price_figure``, ``production_figure``,
``origin_figure``) show either every product that carries an element (``product=None``:
this month across the chain, quantities in t of the element's oxide) or one product
(over time where the chart has a time axis, in t of that product). Their data come from
``product_prices``, ``production_by_stage`` and ``origin_shares``, which the tests check
against the model's records.
"""

import csv
from importlib import resources

import numpy as np
from matplotlib.figure import Figure
from matplotlib.colors import LogNorm
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


def latest(model: RareEarthModel, name: str) -> np.ndarray:
    """The last record of ``name`` (this month's state), without converting the history."""
    return np.asarray(model.datacollector.model_vars[name][-1], dtype=float)


def quota_months(model: RareEarthModel, element: str | tuple[str, ...]) -> np.ndarray:
    """[steps] bool: some exporter held an export quota on ``element`` (or on one of
    several elements) that month."""
    elements = (element,) if isinstance(element, str) else tuple(element)
    quota = history(model, "quota")[:, [model.elements.index(e) for e in elements], :]
    return np.isfinite(quota).any(axis=(1, 2))


def _stack_by_region(ax, model, months: np.ndarray, values: np.ndarray) -> None:
    """Stack ``values`` [T, R] over ``months`` [T], one band per region that has any, in its colour."""
    used = [r for r in range(len(model.regions)) if values[:, r].sum() > 0]
    if used:
        ax.stackplot(
            months, values[:, used].T, labels=[model.regions[r] for r in used],
            colors=[REGION_COLOURS.get(model.regions[r]) for r in used], alpha=0.85,
        )


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


def _months_axis(ax, model: RareEarthModel, element: str | tuple[str, ...] | None = None) -> None:
    """Months on x up to the next whole year, a line at this month, and the months with
    an export quota on ``element`` (or on one of several elements) shaded."""
    ax.set_xlim(0, x_limit(model))
    ax.set_xlabel(f"months since Jan {model.spec.start_year}")
    ax.axvline(model.month, color="#999999", lw=0.8, ls=":")
    if element:
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


def _log_axis(ax, values: np.ndarray) -> None:
    """A log y axis with plain numbers (20, 30, ... labelled too when ``values`` span
    less than a decade)."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = np.nanmin(values), np.nanmax(values)
    ax.yaxis.set_minor_formatter(plain if high < 10 * low else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)


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
        _log_axis(ax, price)
    ax.set_ylabel(f"{element} oxide price (USD/kg{', log' if log else ''})")
    ax.set_title(f"{element} price: domestic zones vs world", fontsize=10)
    _months_axis(ax, model, element)
    _legend(ax, [_quota_handle()])
    return figure


def supply_figure(model: RareEarthModel, element: str) -> Figure:
    """``element`` sold by sellers in each region, stacked: the model's
    ``supply_by_origin``, the element's content of every product sold (concentrate,
    oxide, metal, magnets), so the same tonne counts once at each stage it is sold."""
    e = model.elements.index(element)
    sold = history(model, "supply_by_origin")[:, e, :]  # [T, R]
    figure, ax = _figure()
    # Step 0 is the initial state, before any month has traded.
    months = np.arange(1, sold.shape[0])
    sold = sold[1:]
    _stack_by_region(ax, model, months, sold)
    ax.set_ylabel(f"{element} sold, all stages (t/month)")
    figure.subplots_adjust(left=0.14)  # room for five-digit ticks beside the label
    ax.set_title(f"{element} sold by sellers in each region", fontsize=10)
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


# ------------------------------------------------------------------ the supply chain, by product
UNTRACED_COLOUR = "#d9d9d9"
SHARE_LABEL_MIN = 0.2  # origin shares at least this large are written on their bar


def products_shown(model: RareEarthModel, element: str, product: str | None = None) -> list[int]:
    """Indices of the products a supply-chain chart shows: ``product`` alone, or every
    product that carries ``element`` (concentrates, its oxide, metals, magnets)."""
    if product is not None:
        return [model.products.index(product)]
    return [int(p) for p in np.flatnonzero(model.chain.content[:, model.elements.index(element)] > 0)]


def stages(model: RareEarthModel, products: list[int] | None = None) -> tuple[str, ...]:
    """The stages of ``products`` (default: every product), upstream first."""
    chosen = range(len(model.products)) if products is None else products
    present = {model.product_stage[p] for p in chosen}
    return tuple(stage for stage in dict.fromkeys(model.product_stage) if stage in present)


def _product_elements(model: RareEarthModel, p: int) -> tuple[str, ...]:
    return tuple(e for e, c in zip(model.elements, model.chain.content[p], strict=True) if c > 0)


def product_prices(model: RareEarthModel, element: str, product: str | None = None) -> np.ndarray:
    """Recorded prices (USD/kg) by region: [T, R] of ``product`` over time, or, with no
    product, [P_shown, R] this month of every product carrying ``element``."""
    if product is not None:
        return history(model, "product_price")[:, model.products.index(product), :]
    return latest(model, "product_price")[products_shown(model, element)]


def product_price_figure(model: RareEarthModel, element: str, product: str | None = None, log: bool = True) -> Figure:
    """Price of each product by region (each region is a price zone of the clearing).
    One product: its price in every region over time. No product: this month's price of
    every product carrying ``element`` (rows) in every region (columns), coloured by the
    ratio to the product's reference price, written in USD/kg."""
    if product is not None:
        price = product_prices(model, element, product)
        figure, ax = _figure()
        months = np.arange(price.shape[0])
        for r, region in enumerate(model.regions):
            ax.plot(months, price[:, r], label=region, color=REGION_COLOURS.get(region), lw=1.3, **NOW_MARKER)
        if log:
            _log_axis(ax, price)
        ax.set_ylabel(f"{product} price (USD/kg{', log' if log else ''})")
        ax.set_title(f"{product} price by region", fontsize=10)
        quota_on = _product_elements(model, model.products.index(product))
        _months_axis(ax, model, quota_on)
        _legend(ax, [_quota_handle()])
        return figure
    rows = products_shown(model, element)
    price = product_prices(model, element)
    ratio = price / model.product_reference[rows, None]
    spread = float(np.nanmax(np.abs(np.log(np.clip(ratio, 1e-9, None))))) if ratio.size else 0.0
    bound = max(2.0, float(np.exp(spread)))
    figure = Figure(figsize=SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.25, right=0.95, bottom=0.08, top=0.91)
    ax = figure.add_subplot()
    image = ax.imshow(ratio, cmap="RdBu_r", norm=LogNorm(vmin=1.0 / bound, vmax=bound), aspect="auto")
    dark = np.abs(np.log(np.clip(ratio, 1e-9, None))) > 0.6 * np.log(bound)  # white text on deep colours
    for i in range(price.shape[0]):
        for r in range(price.shape[1]):
            value = price[i, r]
            ax.text(r, i, f"{value:.3g}" if value < 100 else f"{value:,.0f}", ha="center", va="center",
                    fontsize=6, color="white" if dark[i, r] else "black")
    ax.set_xticks(range(len(model.regions)), model.regions, fontsize=7)
    ax.set_yticks(range(len(rows)), [model.products[p] for p in rows], fontsize=7)
    ax.tick_params(length=0)
    colourbar = figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    colourbar.set_label("price / reference price", fontsize=7)
    colourbar.ax.tick_params(labelsize=6)
    colourbar.set_ticks(sorted({1.0 / bound, 0.5, 1.0, 2.0, bound}))
    colourbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    colourbar.ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"Products with {element}: price by region (USD/kg), {month_label(model)}", fontsize=9)
    return figure


def production_by_stage(model: RareEarthModel, element: str) -> np.ndarray:
    """[S, R] this month's recorded production of ``element`` by stage (``stages``) and
    region, t of the element's oxide per month contained in what was made: concentrate
    mined, oxide separated, metal and magnets made."""
    e = model.elements.index(element)
    made = latest(model, "production") * model.chain.content[:, e, None]  # [P, R]
    shown = stages(model)
    stage = np.array(model.product_stage)
    return np.stack([made[stage == s].sum(axis=0) for s in shown])


def production_figure(model: RareEarthModel, element: str, product: str | None = None) -> Figure:
    """Production by stage and region. No product: this month, one bar per stage,
    stacked by region, in t of ``element``'s oxide (the chain's mass balance: where the
    element is mined, separated, made into metal and into magnets). One product: its
    production over time, stacked by region, in t of the product."""
    figure, ax = _figure()
    if product is not None:
        p = model.products.index(product)
        made = history(model, "production")[1:, p, :]  # step 0 is the state before month 0
        months = np.arange(1, made.shape[0] + 1)
        _stack_by_region(ax, model, months, made)
        ax.set_ylabel(f"{product} made ({model.chain.data.unit[p]}/month)")
        ax.set_title(f"{product} production by region", fontsize=10)
        ax.set_ylim(bottom=0)
        _months_axis(ax, model, _product_elements(model, p))
        _legend(ax, [_quota_handle()])
        return figure
    made = production_by_stage(model, element)
    shown = stages(model)
    bottom = np.zeros(len(shown))
    for r, region in enumerate(model.regions):
        if made[:, r].sum() > 0:
            ax.bar(shown, made[:, r], bottom=bottom, label=region, color=REGION_COLOURS.get(region), width=0.6)
            bottom += made[:, r]
    ax.set_ylabel(f"{element} in output (t {element} oxide/month)", fontsize=8)
    ax.set_xlabel("stage")
    ax.set_title(f"{element} production by stage and region, {month_label(model)}", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax)
    return figure


def received(model: RareEarthModel) -> np.ndarray:
    """[P, R] t of each product that each region's buyers got this month (made at home
    plus imports): end users' receipts, plants' purchases of inputs and strategic
    stockpiles' purchases of oxide. The model keeps these on its agents, not in its
    records: they weight ``product_origin`` when several products make up a stage."""
    n_products, n_regions = len(model.products), len(model.regions)
    got = np.zeros((n_products, n_regions))
    np.add.at(got.T, model.end_users.region, model.end_users.received)
    np.add.at(got.T, model.converters.region, model.converters.bought)
    oxides = [p for p, stage in enumerate(model.product_stage) if stage == "oxide"]
    for stock in model.stockpiles:
        got[oxides, stock.region_index] += stock.bought
    return got


def origin_shares(model: RareEarthModel, element: str, product: str | None = None) -> dict[str, np.ndarray]:
    """Each region's supply by origin this month, per stage: {stage: [R, R]} share of
    what the region (row) received that was made in each origin (column), from the
    recorded ``product_origin``. One product: that product's shares. No product: the
    products of the stage that carry ``element``, weighted by the t of the element
    each region received in each (``received`` x content). A row that does not sum to
    1 has a share the model did not trace to a maker; a region that received nothing
    of a stage has a row of zeros."""
    origin = latest(model, "product_origin")  # [P, to, origin]
    if product is not None:
        p = model.products.index(product)
        return {model.product_stage[p]: origin[p]}
    weight = received(model) * model.chain.content[:, model.elements.index(element), None]  # [P, R]
    shown = products_shown(model, element)
    shares = {}
    for stage in stages(model, shown):
        in_stage = [p for p in shown if model.product_stage[p] == stage]
        w = weight[in_stage]  # [p, R]
        total = w.sum(axis=0)
        mixed = np.einsum("pr,pro->ro", w, origin[in_stage])
        shares[stage] = np.where(total[:, None] > 0, mixed / np.where(total > 0, total, 1.0)[:, None], 0.0)
    return shares


def origin_figure(model: RareEarthModel, element: str, product: str | None = None) -> Figure:
    """Import dependency: for each stage (or the one product), each region's supply
    split by the region it was made in, this month, as stacked horizontal bars (share
    of what the region received; shares of at least 20 % are written on the bar).
    Grey: a share the model did not trace to a maker."""
    shares = origin_shares(model, element, product)
    panels = list(shares)
    columns = 1 if len(panels) == 1 else 2
    rows = (len(panels) + 1) // 2
    figure = Figure(figsize=SIZE, dpi=DPI)
    figure.subplots_adjust(left=0.07, right=0.84, bottom=0.1, top=0.85, wspace=0.08, hspace=0.45)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    regions = list(model.regions)
    made_in: set[str] = set()
    untraced_shown = False
    for ax, stage in zip(axes, panels, strict=False):
        share = shares[stage]
        left = np.zeros(len(regions))
        for o, origin in enumerate(regions):
            width = share[:, o]
            drawn = np.flatnonzero(width > 1e-4)  # a bar only where there is one: drawing is most of the time
            if not drawn.size:
                continue
            ax.barh(drawn, width[drawn], left=left[drawn], color=REGION_COLOURS.get(origin), height=0.75, label=origin)
            made_in.add(origin)
            for r in np.flatnonzero(width >= SHARE_LABEL_MIN):
                ax.text(left[r] + width[r] / 2, r, f"{100 * width[r]:.0f}", ha="center", va="center",
                        fontsize=5.5, color="white")
            left += width
        untraced = np.where(share.sum(axis=1) > 0, np.clip(1.0 - left, 0.0, None), 0.0)
        drawn = np.flatnonzero(untraced > 5e-3)
        if drawn.size:
            ax.barh(drawn, untraced[drawn], left=left[drawn], color=UNTRACED_COLOUR, height=0.75, label="untraced")
            untraced_shown = True
        ax.set_title(stage if product is None else f"{product} ({stage})", fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].set_yticks(range(len(regions)), regions)
    axes[0].set_ylim(len(regions) - 0.5, -0.5)  # first region on top
    axes[0].set_xlim(0, 1)
    axes[0].xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:.0f}"))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for column in range(columns):  # the lowest panel of each column carries the axis
        ax = axes[max(i for i in range(len(panels)) if i % columns == column)]
        ax.set_xlabel("% of what the region received", fontsize=7)
        ax.xaxis.set_tick_params(labelbottom=True)
    handles = [Patch(color=REGION_COLOURS.get(region), label=region) for region in regions if region in made_in]
    if untraced_shown:
        handles.append(Patch(color=UNTRACED_COLOUR, label="untraced"))
    figure.legend(
        handles=handles, title="made in", title_fontsize=7, fontsize=7,
        loc="upper left", bbox_to_anchor=(0.855, 0.85), frameon=False,
    )
    what = product if product is not None else f"{element} products"
    figure.suptitle(f"Supply by origin, {what}: {month_label(model)}", fontsize=9)
    return figure
