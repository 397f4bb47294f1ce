"""The browser app: Mesa's SolaraViz around the rare earth model (``ree viz`` serves it).

Each browser session gets its own model: ``Page`` builds it with ``solara.use_memo``, so
nothing at module level is shared between visitors (Mesa's own examples build one model
at import, which every visitor would then step). The sidebar holds Mesa's controls
(Reset, Play, Step) and the scenario controls (``abm.viz.controls.model_params``); the
main panel a header (the element and product shown, the current run in words) above
the charts of ``abm.viz.charts``, redrawn after every step. The supply-chain charts show
every product that carries the chosen element, or one product chosen in the header.
"""

import functools
import logging
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import solara  # noqa: E402
from mesa.visualization import SolaraViz  # noqa: E402
from mesa.visualization.utils import update_counter  # noqa: E402

from abm.model import WORLD  # noqa: E402
from abm.scenario import ELEMENTS, KEYWORD_PATHS, Scenario  # noqa: E402
from abm.viz import charts  # noqa: E402
from abm.viz.controls import BrowserModel, initial_values, model_params, scenario_files  # noqa: E402

logger = logging.getLogger(__name__)

TITLE = "Rare earth supply chain"
PLAY_INTERVAL_MS = 150
# The product select's first choice: every product that carries the chosen element.
EVERY_PRODUCT = "all with the element"


class View:
    """Per-session display choices, shared by the header and every chart."""

    def __init__(self, element: solara.Reactive, log_prices: solara.Reactive, product: solara.Reactive) -> None:
        self.element = element
        self.log_prices = log_prices
        self.product = product  # a product name, or EVERY_PRODUCT


def chosen_product(model, choice: str) -> str | None:
    """The product a chart shows for the select's ``choice``: None (every product with
    the element) for the first choice, or for a product this model does not have (a
    scenario of another base year after Reset)."""
    return choice if choice in model.products else None


@solara.component
def Chart(model, draw: Callable, dependencies: list) -> None:
    """A matplotlib figure of ``model``, redrawn when the model steps or a dependency changes."""
    update_counter.get()  # Mesa bumps this after Step, Play and Reset
    keys = [id(model), model.steps, *dependencies]

    def drawn():
        try:
            return draw(), None
        except Exception as error:  # one chart failing must not take the page down
            logger.exception("chart failed")
            return None, f"This chart could not be drawn: {error!r}"

    figure, problem = solara.use_memo(drawn, keys)
    if problem:
        solara.Error(problem)
    else:
        solara.FigureMatplotlib(figure, format="png", dependencies=keys)


def chart_components(view: View) -> list[tuple[Callable, int]]:
    """SolaraViz components: (function of the model -> element, page)."""

    def element_chart(draw):
        def component(model):
            element = view.element.value
            return Chart(model, lambda: draw(model, element), [element])

        return component

    def price(model):
        element, log = view.element.value, view.log_prices.value
        return Chart(model, lambda: charts.price_figure(model, element, log=log), [element, log])

    def tension(model):
        return Chart(model, lambda: charts.tension_figure(model), [])

    def product_chart(draw, log: bool = False):
        def component(model):
            element, choice = view.element.value, view.product.value
            product = chosen_product(model, choice)
            if log:
                logged = view.log_prices.value
                return Chart(model, lambda: draw(model, element, product, log=logged), [element, product, logged])
            return Chart(model, lambda: draw(model, element, product), [element, product])

        return component

    return [
        (price, 0),
        (element_chart(charts.trade_network_figure), 0),
        (element_chart(charts.supply_figure), 0),
        (element_chart(charts.shortfall_figure), 0),
        (element_chart(charts.stockpile_figure), 0),
        (tension, 0),
        (product_chart(charts.product_price_figure, log=True), 0),
        (product_chart(charts.production_figure), 0),
        (product_chart(charts.origin_figure), 0),
    ]


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def _default_scenario() -> Scenario:
    return Scenario()


def levers_set(spec: Scenario) -> list[str]:
    """'keyword value' for each model keyword beyond the shock whose value differs from
    the defaults (the levers this run uses, from its file or from a control)."""
    def value(scenario: Scenario, section: str | None, key: str):
        return getattr(scenario if section is None else getattr(scenario, section), key)

    return [
        f"{keyword} {_shown(value(spec, section, key))}"
        for keyword, (section, key) in KEYWORD_PATHS.items()
        if section not in (None, "shock", "tension") and value(spec, section, key) != value(_default_scenario(), section, key)
    ]


def run_lines(model) -> list[str]:
    """What the run is, in words."""
    spec = model.spec
    shock = spec.shock
    lines = [
        f"Scenario: {spec.name} ({model.scenario_file})",
        f"Now: {charts.month_label(model)} of {spec.horizon_months}" + ("" if model.running else " (finished)"),
    ]
    if shock.quota_cut > 0:
        lines.append(
            f"Quota cut: {_percent(shock.quota_cut)} of {shock.exporter} exports, "
            f"months {shock.start}-{shock.start + shock.months - 1}"
        )
    else:
        lines.append("Quota cut: none scripted")
    lines.append(f"Tension volatility: {spec.tension.volatility:g}")
    levers = levers_set(spec)
    lines.append(f"Levers: {', '.join(levers) if levers else 'none'}")
    lines += deal_lines(model)
    return lines


def deal_lines(model) -> list[str]:
    """The negotiated deal's state in words (nothing without [negotiation])."""
    talks = model.talks
    if talks is None:
        return []
    party = model.negotiating_party[0]
    broken = f"; {talks.breaks} broken so far" if talks.breaks else ""
    if talks.terms is None:
        return [f"Deal ({party} with {model.spec.shock.exporter}): none{broken}"]
    return [f"Deal ({party} with {model.spec.shock.exporter}): {_percent(talks.terms.share)} of its imports "
            f"guaranteed for {talks.terms.transfer / 1e6:,.0f} M USD over {talks.params.horizon_months} months, "
            f"until month {min(talks.ends, model.spec.horizon_months) - 1}{broken}"]


def element_lines(model, element: str) -> list[str]:
    """What holds for ``element`` this month, in words."""
    e = model.elements.index(element)
    quotas = [code for code, cap in zip(model.exporters, model.quota[e], strict=True) if np.isfinite(cap)]
    closed = sum(1 for *_, restricted in charts.trade_edges(model, element) if restricted)
    price = charts.history(model, "price")[:, e, model.price_zones.index(WORLD)]
    shortfall = float(model.shortfall[e].sum())
    demand = float(model.demand[e].sum())
    return [
        f"{element} this month: "
        + (f"export quota by {', '.join(quotas)}; " if quotas else "no export quota; ")
        + f"{closed} trade link{'s' if closed != 1 else ''} closed",
        f"{element} world price: {price[-1]:,.0f} USD/kg ({price[-1] / price[0]:.2f} x month 0)",
        f"{element} shortfall: {shortfall:,.0f} t/month ({_percent(shortfall / demand if demand else 0.0)} of demand)",
    ]


@solara.component
def Header(model: solara.Reactive, view: View) -> None:
    """Above the charts: the element shown, and the current run in words (updated every step)."""
    update_counter.get()
    region_names = solara.use_memo(charts.region_names, [])
    current = model.value
    with solara.Card(style={"width": "100%"}):
        for problem in current.control_errors:
            solara.Warning(problem, dense=True)
        with solara.Row(style={"align-items": "center", "flex-wrap": "wrap", "gap": "12px"}):
            solara.Text("Element", style={"font-weight": "bold"})
            solara.ToggleButtonsSingle(value=view.element, values=list(ELEMENTS), dense=True)
            solara.Checkbox(label="Log price axis", value=view.log_prices)
            with solara.Div(style={"width": "230px"}):
                solara.Select(label="Product", value=view.product, values=[EVERY_PRODUCT, *current.products], dense=True)
        with solara.Columns([1, 1], style={"font-size": "0.85rem", "margin-top": "8px"}):
            for lines in (run_lines(current), element_lines(current, view.element.value)):
                with solara.Column(gap="0px"):
                    for line in lines:
                        solara.Text(line)
        solara.Text(
            "Regions: " + ", ".join(f"{code} {name}" for code, name in region_names.items())
            + ". Shaded months: an export quota on this element (on a chosen product: on one of its elements) is in force.",
            style={"font-size": "0.75rem", "color": "#666", "margin-top": "6px"},
        )


@solara.component
def Page() -> None:
    """One browser session: its own model, controls and charts."""
    scenarios = solara.use_memo(scenario_files, [])
    params = solara.use_memo(lambda: model_params(scenarios), [])
    first_model = solara.use_memo(lambda: BrowserModel(**initial_values(params)), [])
    model = solara.use_reactive(first_model)
    element, log_prices = solara.use_reactive(ELEMENTS[0]), solara.use_reactive(True)
    product = solara.use_reactive(EVERY_PRODUCT)
    view = solara.use_memo(lambda: View(element, log_prices, product), [])
    components = solara.use_memo(lambda: chart_components(view), [])
    Header(model, view)
    SolaraViz(
        model,
        components=components,
        model_params=params,
        name=TITLE,
        play_interval=PLAY_INTERVAL_MS,
    )
