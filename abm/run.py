"""Running a scenario to the end and turning what it recorded into tidy tables and metrics."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from abm.data import load_calibration
from abm.levers import LEVER_SECTIONS
from abm.metrics import (
    METRICS, STAGES, USD_PER_T_PER_USD_PER_KG, metric_names,
    annualised_volatility, herfindahl, max_drawdown, peak_to_base_ratio, recovery_months, resilience_loss,
    service_level, shortfall_depth, shortfall_fraction,
)
from abm.model import (
    AGENT_LABELS, AGENT_REPORTERS, ALL, DEAL_VALUES, PRODUCT_AGENTS, PRODUCT_RECORDED, RECORDED, WITHOUT_ELEMENT, WORLD,
    RareEarthModel, resolve_scenario,
)
from abm.scenario import Scenario, ScenarioError

SERIES_COLUMNS = ["step", "variable", "element", "region", "value"]


@dataclass(frozen=True)
class RunResult:
    """One run: ``series`` in long form (step, variable, element, region, value),
    ``metrics``, a flat dict of floats and, when asked for (``run_scenario(...,
    products=True)``: building them costs about as much as the run), ``product_series``
    the supply chain product by product (``tidy_product_series``) and
    ``import_dependency`` each region's supply by origin per stage
    (``import_dependency``); None otherwise."""

    scenario: Scenario
    seed: int
    series: pd.DataFrame
    metrics: dict[str, float]
    product_series: pd.DataFrame | None = None
    import_dependency: pd.DataFrame | None = None


def _long_table(
    recorded: Mapping[str, Any], steps: np.ndarray, labels: Mapping[str, tuple[str, ...]], elements: tuple[str, ...]
) -> pd.DataFrame:
    """Recorded arrays as rows (step, variable, element, region, value): the one place the
    axes of a recorded variable get their labels.

    ``recorded[name]`` stacks the variable over ``steps`` ([T]): [T, E, K] (per element and
    ``labels[name]``), [T, E] (world totals, region ``all``) or [T, K] for the variables
    WITHOUT_ELEMENT (element ``all``).
    """
    frames = []
    for name in RECORDED:
        values = np.asarray(recorded[name], dtype=float)
        if name in WITHOUT_ELEMENT:  # [T, K]: no element axis
            values = values[:, None, :]
            names: tuple[str, ...] = (ALL,)
        else:
            names = elements
            if values.ndim == 2:  # [T, E]: world totals
                values = values[:, :, None]
        regions = labels[name]
        n_e, n_r = values.shape[1], values.shape[2]
        frames.append(
            pd.DataFrame(
                {
                    "step": np.repeat(steps, n_e * n_r),
                    "variable": name,
                    "element": np.tile(np.repeat(np.array(names), n_r), len(steps)),
                    "region": np.tile(np.array(regions), len(steps) * n_e),
                    "value": values.reshape(-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _categorical(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        table[column] = table[column].astype("category")
    return table


def tidy_series(model: RareEarthModel) -> pd.DataFrame:
    """What DataCollector recorded, one row per (step, variable, element, region).

    Units: ``price`` USD/kg; flows (demand, supply, shortfall, supply_by_origin, mined,
    exports, recycled, consumed, losses, quota) t REO per month; levels (``stockpile``,
    ``strategic_stock``, ``stocks``) t REO; ``spend`` USD per month; ``policy_cost`` USD
    per month with element ``all`` and the lever as region; ``tension`` an index in
    [0, 1] with element ``all``. ``quota`` is NaN where no quota is in force. Step k
    records the state after month k - 1 (step 0 is the initial state).
    """
    recorded = model.datacollector.model_vars
    steps = np.arange(len(recorded[RECORDED[0]]))
    series = _long_table(recorded, steps, model.labels(), model.elements)
    return _categorical(series, ("variable", "element", "region"))[SERIES_COLUMNS]


PRODUCT_SERIES_COLUMNS = ["step", "variable", "product", "stage", "region", "partner", "value"]
# Product records and their names in the tidy table; flows and origin shares have a partner region.
_PRODUCT_NAMES = {
    "product_price": "price", "production": "production", "product_received": "received",
    "product_shortfall": "shortfall",
    "product_unserved": "unserved", "product_flow": "flow", "product_origin": "origin_share",
}


def tidy_product_series(model: RareEarthModel) -> pd.DataFrame:
    """The supply chain product by product, one row per (step, variable, product, region
    [, partner]): columns ``step, variable, product, stage, region, partner, value``.

    Variables: ``price`` (USD/kg, the region's clearing price), ``production`` (t of
    product made in the region that month: concentrate mined, oxide separated, metal
    and magnets made), ``shortfall`` (t end users in the region needed and did not get,
    from stock or purchases), ``unserved`` (t end users ordered at their highest price
    this month and did not get: a shortage they cover from stock while it lasts),
    ``flow`` (t shipped from ``region`` to ``partner``, contracts and spot) and
    ``origin_share`` (the share of what ``region``'s buyers got that was made in
    ``partner``: import dependency by stage, re-exports traced to their maker). Rows
    without a partner have partner ``all``. Step k is the state after month k - 1.
    """
    recorded = model.datacollector.model_vars
    steps = np.arange(len(recorded[PRODUCT_RECORDED[0]]))
    products, regions = np.array(model.products), np.array(model.regions)
    stage = dict(zip(model.products, model.product_stage, strict=True))
    frames = []
    for name in PRODUCT_RECORDED:
        values = np.asarray(recorded[name], dtype=float)  # [T, P, R] or [T, P, R, R]
        partners = regions if values.ndim == 4 else np.array([ALL])
        values = values.reshape(len(steps), len(products), len(regions), len(partners))
        n = len(products) * len(regions) * len(partners)
        frames.append(pd.DataFrame({
            "step": np.repeat(steps, n),
            "variable": _PRODUCT_NAMES[name],
            "product": np.tile(np.repeat(products, len(regions) * len(partners)), len(steps)),
            "region": np.tile(np.repeat(regions, len(partners)), len(steps) * len(products)),
            "partner": np.tile(partners, len(steps) * len(products) * len(regions)),
            "value": values.reshape(-1),
        }))
    table = pd.concat(frames, ignore_index=True)
    table["stage"] = table["product"].map(stage)
    return _categorical(table, ("variable", "product", "stage", "region", "partner"))[PRODUCT_SERIES_COLUMNS]


# The origin column of receipts whose maker the model's records do not trace.
UNTRACED = "untraced"
IMPORT_DEPENDENCY_COLUMNS = ["region", "stage", "origin", "received_t", "share"]
# Shares of a region's supply below this are rounding, not supply (1 - traced shares that add to 1).
DUST = 1e-9


def received_by_origin(model: RareEarthModel) -> np.ndarray:
    """[T, P, R, R + 1] t of each product the buyers (plants, end users, stockpiles) of
    each region received in each month of the run (steps 1 to T; step 0, the spin-up's
    last month, is left out), by the region that made it (axis 3, ``model.regions`` then
    ``UNTRACED``). From the model's records only:

    - what a region's buyers received (``product_received``: its sellers' sales at home
      and its imports);
    - it is split by maker with ``product_origin`` (re-exports traced to their maker);
      what its shares leave below 1 (imports whose maker the model's provenance did not
      trace: rounding only, now that the model solves provenance exactly) is ``UNTRACED``. A month in which the shares are all 0 and the region
      imported nothing is a month its buyers received nothing (weight 0).
    """
    recorded = model.datacollector.model_vars
    flow = np.asarray(recorded["product_flow"], dtype=float)[1:]  # [T, P, from, to]
    origin = np.asarray(recorded["product_origin"], dtype=float)[1:]  # [T, P, to, origin]
    imports = flow.sum(axis=2)
    received = np.asarray(recorded["product_received"], dtype=float)[1:]  # [T, P, R]
    traced = origin.sum(axis=3)
    got_some = (traced > 0) | (imports > 0)
    shares = np.concatenate([origin, np.maximum(1.0 - traced, 0.0)[..., None]], axis=3)
    return np.where(got_some[..., None], received[..., None] * shares, 0.0)


def import_dependency(model: RareEarthModel) -> pd.DataFrame:
    """Each region's supply by origin per stage: for every region whose buyers received
    products of a stage over the run, the t they received (``received_t``, summed over
    the stage's products and the run's months) and the share of it (``share``, adding up
    to 1 per region and stage) made in each origin (``origin``: a region, or
    ``UNTRACED``). Weighting: each month and product counts with what the region's
    buyers received of it, t of product (``received_by_origin``: the recorded
    ``product_received`` split by ``product_origin``), so ``share`` is ``sum(received x origin
    share) / sum(received)`` over the run's months and the stage's products. Columns
    ``region, stage, origin, received_t, share``; origins that supplied nothing (below
    ``DUST`` of the total: rounding) are left out. "62 % of the EU's magnets come from
    China" is the row (EU, magnet, CN) with share 0.62."""
    by_origin = received_by_origin(model)  # [T, P, R, O]
    stage = np.array(model.product_stage)
    origins = (*model.regions, UNTRACED)
    rows = []
    for r, region in enumerate(model.regions):
        for name in dict.fromkeys(model.product_stage):
            got = by_origin[:, stage == name, r].sum(axis=(0, 1))  # [O]
            if got.sum() > 0:
                got = np.where(got > DUST * got.sum(), got, 0.0)
                rows += [(region, name, o, got[k], got[k] / got.sum()) for k, o in enumerate(origins) if got[k] > 0]
    return pd.DataFrame(rows, columns=IMPORT_DEPENDENCY_COLUMNS)


# Columns of mesa.batch_run rows that are not model keywords: its own, the recorded
# variables and (with record_agents=True) each agent's labels and values.
_NOT_PARAMETERS = frozenset({
    "RunId", "iteration", "Step", "AgentID", *RECORDED, *PRODUCT_RECORDED, *AGENT_LABELS,
    *(name for reporters in AGENT_REPORTERS.values() for name in reporters),
})


def label_batch_run(rows: list[dict[str, Any]], model_cls: type[RareEarthModel] = RareEarthModel) -> pd.DataFrame:
    """``mesa.batch_run`` output as the tidy long table of ``tidy_series``: columns
    ``RunId, iteration, Step, <parameters...>, variable, element, region, value``.

    Each row holds the recorded arrays of one run at one step, unlabelled. Their labels
    depend on the scenario (a lever in a new region adds a price zone), so they come from
    the model configuration of the row: ``model_cls`` is built (not stepped) with the row's
    parameters, once per distinct parameter set, and its ``labels()`` name the axes. Rows
    that ``record_agents=True`` multiplied (one per agent) count once per run and step;
    the per-agent values are left out (see ``tidy_agent_series``).
    """
    models: dict[str, RareEarthModel] = {}
    frames, seen = [], set()
    for row in rows:
        if (row["RunId"], row["Step"]) in seen:
            continue
        seen.add((row["RunId"], row["Step"]))
        parameters = {k: v for k, v in row.items() if k not in _NOT_PARAMETERS}
        key = repr(sorted((k, v) for k, v in parameters.items() if k != "rng"))
        if key not in models:
            models[key] = model_cls(**{**parameters, "rng": 0})
        model = models[key]
        step = int(row["Step"])
        table = _long_table({name: np.asarray(row[name])[None] for name in RECORDED}, np.array([step]),
                            model.labels(), model.elements).drop(columns="step")
        head = {"RunId": row["RunId"], "iteration": row["iteration"], "Step": step, **parameters}
        frames.append(pd.concat([pd.DataFrame([head] * len(table)), table], axis=1))
    return _categorical(pd.concat(frames, ignore_index=True), ("variable", "element", "region"))


AGENT_SERIES_COLUMNS = ["step", "agent_type", "agent_id", "region", "sector", "variable", "element", "product", "value"]


def tidy_agent_series(model: RareEarthModel) -> pd.DataFrame:
    """What a model built with ``record_agents=True`` recorded per agent, one row per
    (step, agent, variable, element or product): columns ``step, agent_type, agent_id,
    region, sector, variable, element, product, value``. ``sector`` is an end user's end
    use or sector and a plant's stage, blank otherwise. Plants' stocks, output and sales
    and end users' need, receipts, shortfall, stock and spend are per product (element
    ``all``); the others per element (product ``all``); a plant's ``capacity_t`` has
    both ``all``. Units: ``_t`` variables are t (of the product, or of the element's
    oxide; per month for flows; a plant's capacity t per month), ``spend_usd`` USD per
    month. Step k is the state after month k - 1. Raises ValueError for a model that did
    not record its agents.
    """
    if not model.record_agents:
        raise ValueError("the model did not record its agents: build it with record_agents=True")
    frames = []
    for agent_type, reporters in AGENT_REPORTERS.items():
        if agent_type not in model.agent_types:  # no stockpiles without the lever
            continue
        table = model.datacollector.get_agenttype_vars_dataframe(agent_type)
        steps = table.index.get_level_values("Step").to_numpy().astype(int)
        ids = table.index.get_level_values("AgentID").to_numpy()
        sector = table["sector"].to_numpy() if "sector" in table else np.full(len(table), "")
        for variable in reporters:
            values = np.stack(table[variable].to_numpy()).astype(float)  # [N, E], [N, P] or [N]
            product_axis = values.ndim == 2 and agent_type in PRODUCT_AGENTS
            items = (model.products if product_axis else model.elements) if values.ndim == 2 else (ALL,)
            n_e = len(items)
            item = np.tile(np.array(items), len(table))
            every = np.full(len(item), ALL)
            frames.append(pd.DataFrame({
                "step": np.repeat(steps, n_e), "agent_type": agent_type.__name__, "agent_id": np.repeat(ids, n_e),
                "region": np.repeat(table["region"].to_numpy(), n_e), "sector": np.repeat(sector, n_e),
                "variable": variable, "element": every if product_axis else item,
                "product": item if product_axis else every, "value": values.reshape(-1),
            }))
    series = pd.concat(frames, ignore_index=True).sort_values(["step", "agent_id", "variable"], kind="stable")
    return _categorical(series.reset_index(drop=True), ("agent_type", "region", "sector", "variable", "element", "product"))[
        AGENT_SERIES_COLUMNS
    ]


def run_metrics(model: RareEarthModel) -> dict[str, float]:
    """Headline figures of a finished run, flat, for tables of many runs: every metric of
    the catalogue ``abm.metrics.METRICS`` (names ``<quantity>_<unit>[_<element, stage or lever>]``,
    units and meanings there), in the order of ``metric_names``.

    Per element (suffix ``_Nd`` ...): world price volatility, peak ratio and maximum
    drawdown; the dominant exporter's domestic price relative to the world's; unmet
    demand outside the exporter (t, fraction, deepest month, resilience loss, months from
    the first month below 95 % service at or after the shock's start until service is
    back, right-censored at the horizon); the
    concentration of supply to importers outside the exporter (Herfindahl index,
    effective number of suppliers, share from the exporter). Per stage (suffix
    ``_oxide``, ``_metal``, ``_magnet``): the share of what the importing regions outside
    the exporter received of the stage's products that was made in the exporter (from
    ``received_by_origin``, the regions together), and the new capacity private
    investment has running outside the exporter at the horizon (t/yr). Without suffix:
    the same service figures for all elements weighted by their 2024 value, the new mine
    capacity outside the exporter, the shortfall outside the exporter at magnet users and
    at the other end uses (t of product, ``_shortfall_by_use``), and policy costs.
    """
    recorded = model.datacollector.model_vars
    price = np.asarray(recorded["price"])  # [T, E, Z]
    shortfall = np.asarray(recorded["shortfall"])  # [T, E, importing regions]
    demand = np.asarray(recorded["demand"])
    exporter = model.spec.shock.exporter
    outside = [i for i, r in enumerate(model.importing_regions) if r != exporter]
    importers_outside = [model.regions.index(r) for r in model.importing_regions if r != exporter]
    world = model.price_zones.index(WORLD)
    start = model.spec.shock.start + 1  # the step that records the shock's first month
    short_out, demand_out = shortfall[:, :, outside].sum(axis=2), demand[:, :, outside].sum(axis=2)  # [T, E]
    foregone_out = _foregone(recorded, outside)  # [T, E]
    metrics: dict[str, float] = {}

    def put(base: str, value: float, suffix: str = "") -> None:
        metrics[METRICS[base].name(suffix)] = float(value)

    for e, element in enumerate(model.elements):
        world_price = price[:, e, world]
        put("world_price_volatility_fraction", annualised_volatility(world_price), element)
        put("world_price_peak_ratio", peak_to_base_ratio(world_price, world_price[0]), element)
        put("world_price_max_drawdown_fraction", max_drawdown(world_price), element)
        put("exporter_to_world_price_ratio", (
            np.mean(price[:, e, model.price_zones.index(exporter)] / world_price)
            if exporter in model.price_zones else np.nan
        ), element)
        put("shortfall_outside_exporter_t", short_out[:, e].sum(), element)
        put("demand_foregone_outside_exporter_t", foregone_out[:, e].sum(), element)
        put("shortfall_outside_exporter_fraction", shortfall_fraction(short_out[:, e], demand_out[:, e]), element)
        _service_metrics(put, service_level(short_out[:, e], demand_out[:, e]), start, element)
        origins = model.cumulative_trade[e][:, importers_outside].sum(axis=1)  # [R]
        hhi = herfindahl(origins)
        put("supplier_hhi_index", hhi, element)
        put("effective_suppliers_count", 1.0 / hhi if hhi > 0 else 0.0, element)
        put("supply_from_exporter_fraction", (
            origins[model.regions.index(exporter)] / origins.sum() if origins.sum() > 0 else 0.0
        ), element)
    by_origin = received_by_origin(model)[:, :, importers_outside].sum(axis=2)  # [T, P, O]
    stage = np.array(model.product_stage)
    for name in STAGES:
        got = by_origin[:, stage == name].sum(axis=(0, 1))  # [O]
        put("supply_made_in_exporter_fraction", (
            got[model.regions.index(exporter)] / got.sum() if got.sum() > 0 else np.nan
        ), name)
    new = _new_capacity_outside(model, exporter)
    for name in STAGES:
        put("new_capacity_outside_exporter_tproductpy", new.get(name, 0.0), name)
    put("new_mine_capacity_outside_exporter_tpy", new.get("concentrate", 0.0))
    magnets, others = _shortfall_by_use(model, importers_outside)
    put("magnet_user_shortfall_outside_exporter_tproduct", magnets)
    put("other_end_use_shortfall_outside_exporter_tproduct", others)
    value = model.reference_price  # USD/kg: weights the elements by what a tonne is worth
    _service_metrics(put, service_level(short_out @ value, demand_out @ value), start)
    put("unserved_value_usd", (short_out @ value).sum() * USD_PER_T_PER_USD_PER_KG)
    put("shortfall_outside_exporter_t", short_out.sum())
    put("demand_foregone_outside_exporter_t", foregone_out.sum())
    put("foregone_value_usd", (foregone_out @ value).sum() * USD_PER_T_PER_USD_PER_KG)
    put("mean_tension_index", np.mean(recorded["tension"]))
    policy_cost = np.asarray(recorded["policy_cost"])  # [T, levers] USD
    put("policy_cost_usd", policy_cost.sum())
    for k, lever in enumerate(model.programmes.names):
        put("policy_cost_usd", policy_cost[:, k].sum(), lever)
    _deal_metrics(put, model)
    return {name: metrics[name] for name in metric_names(model.elements, model.programmes.names)}


def _deal_metrics(put: Callable[..., None], model: RareEarthModel) -> None:
    """The negotiated deal's figures over months 1 to the horizon (``abm.negotiation``;
    zeros without ``[negotiation]``): months in force, breaks, the transfer paid (a deal's
    transfer over its horizon, paid month by month) and the mean guaranteed share of the
    party's need per element."""
    recorded = model.datacollector.model_vars
    in_force = np.asarray(recorded["deal_in_force"], dtype=float)[1:].sum(axis=1)  # [T] (0 or 1)
    share = np.asarray(recorded["deal_share"], dtype=float)[1:].sum(axis=2)  # [T, E]
    put("deal_months", in_force.sum())
    put("deal_breaks_count", model.talks.breaks if model.talks is not None else 0.0)
    transfer = 0.0
    if model.talks is not None:
        values = np.asarray(recorded["deal_value"], dtype=float)[1:]  # [T, DEAL_VALUES]
        transfer = values[:, DEAL_VALUES.index("transfer")].sum() / model.talks.params.horizon_months
    put("deal_transfer_usd", transfer)
    for e, element in enumerate(model.elements):
        put("deal_share_fraction", share[:, e].mean() if len(share) else 0.0, element)


def _new_capacity_outside(model: RareEarthModel, exporter: str) -> dict[str, float]:
    """t/yr of new capacity running at the horizon outside ``exporter``, by stage
    (``capacity_online`` of the last step, labelled "region:stage")."""
    online = np.asarray(model.datacollector.model_vars["capacity_online"][-1], dtype=float)
    total: dict[str, float] = {}
    for label, value in zip(model.investors.labels, online, strict=True):
        region, stage = label.split(":")
        if region != exporter:
            total[stage] = total.get(stage, 0.0) + float(value)
    return total


def _foregone(recorded: dict, regions: list[int]) -> np.ndarray:
    """[T, E] t of each element's oxide that end users in ``regions`` (indices of the
    importing regions) would have used at reference prices and did not: the need at
    reference prices less what they consumed (need less shortfall), per region and month,
    at least 0 (a month of cheap supply does not offset a month of scarcity). It counts
    what prices priced out (demand destroyed) as well as what was not delivered
    (shortfall)."""
    reference = np.asarray(recorded["demand_at_reference"])[:, :, regions]  # [T, E, regions]
    consumed = np.asarray(recorded["demand"])[:, :, regions] - np.asarray(recorded["shortfall"])[:, :, regions]
    return np.maximum(reference - consumed, 0.0).sum(axis=2)


def _shortfall_by_use(model: RareEarthModel, regions: list[int]) -> tuple[float, float]:
    """t of product that end users in ``regions`` (indices of ``model.regions``) needed
    and did not get over months 1 to the horizon (``product_shortfall``): at magnet
    users (the end uses of the chain data) and at the other end uses. Magnet users buy
    only magnets and the other end uses only oxides (``RareEarthModel._build_end_users``),
    so the product's stage tells them apart."""
    shortfall = np.asarray(model.datacollector.model_vars["product_shortfall"], dtype=float)[1:]  # [T, P, R]
    by_product = shortfall[:, :, regions].sum(axis=(0, 2))  # [P]
    stage = np.array(model.product_stage)
    return float(by_product[stage == "magnet"].sum()), float(by_product[stage == "oxide"].sum())


def _service_metrics(put: Callable[..., None], service: np.ndarray, start: int, suffix: str = "") -> None:
    """Depth, resilience loss and recovery (months, censored flag) of a monthly service
    level [T] (1 = all demand served), for one element (``suffix``) or the total."""
    put("shortfall_depth_fraction", shortfall_depth(service), suffix)
    put("resilience_loss_months", resilience_loss(service), suffix)
    months, censored = recovery_months(service, start)
    put("recovery_months", months, suffix)
    put("recovery_censored_flag", censored, suffix)


def outcome_names() -> list[str]:
    """The outcomes ``evaluate`` returns for the default calibration, in its stable order:
    what to declare as EMA Workbench ``ScalarOutcome``s."""
    return metric_names(load_calibration().elements, tuple(LEVER_SECTIONS))  # the levers of Programmes.names


def run_model(scenario: Scenario, seed: int, record_agents: bool = False) -> RareEarthModel:
    """A model of ``scenario`` with ``seed``, stepped to its horizon (recording every agent
    too with ``record_agents``, see ``tidy_agent_series``)."""
    model = RareEarthModel(rng=int(seed), scenario=scenario, record_agents=record_agents)
    while model.running:
        model.step()
    return model


def run_scenario(scenario: Scenario, seed: int, products: bool = False) -> RunResult:
    """Run ``scenario`` to its horizon with ``seed``; the same pair always gives the same
    result. ``products`` also builds the product series and the import dependency."""
    model = run_model(scenario, seed)
    extra = dict(product_series=tidy_product_series(model), import_dependency=import_dependency(model)) if products else {}
    return RunResult(scenario=model.spec, seed=seed, series=tidy_series(model), metrics=run_metrics(model), **extra)


# How to seed replications, for the error raised when no seed is given.
SEED_ADVICE = (
    "a seed: evaluate(seed=3, ...); with EMA Workbench use ReplicatorModel('ree', function=abm.evaluate) "
    "and model.replications = [{'seed': s} for s in range(10)]"
)


def evaluate(seed: int | None = None, scenario: Scenario | str | None = None, **params: object) -> dict[str, float]:
    """One run as a plain function ``(params) -> outcomes`` for exploratory-modelling tools.

    ``seed`` (a whole number >= 0) is required: with a default every replication would be
    the same run. ``params`` are model keywords (``quota_cut``, ``stockpile_months`` ...)
    or scenario keys (``market.short_run_elasticity``), plain or numpy scalars;
    ``scenario`` is the base (a path or Scenario, default the built-in defaults). Returns
    the metrics named by ``outcome_names()``. With EMA Workbench:
    ``ReplicatorModel("ree", function=evaluate)`` with ``model.replications =
    [{"seed": s} for s in range(n)]`` and ``model.outcomes = [ArrayOutcome(name) for name
    in outcome_names()]`` (one value per replication; ``ScalarOutcome(name,
    function=np.mean)`` aggregates them). Raises ScenarioError for a missing or bad seed
    or setting.
    """
    if seed is None or isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScenarioError("abm.evaluate", "seed", seed, SEED_ADVICE)
    return run_metrics(run_model(resolve_scenario(scenario).with_settings(params), int(seed)))
