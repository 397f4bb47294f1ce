"""Running a scenario to the end and turning what it recorded into tidy tables and metrics."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from abm.data import load_calibration
from abm.levers import LEVER_SECTIONS
from abm.metrics import (
    METRICS, USD_PER_T_PER_USD_PER_KG, metric_names,
    annualised_volatility, herfindahl, max_drawdown, peak_to_base_ratio, recovery_months, resilience_loss,
    service_level, shortfall_depth, shortfall_fraction,
)
from abm.model import (
    AGENT_LABELS, AGENT_REPORTERS, ALL, RECORDED, WITHOUT_ELEMENT, WORLD, RareEarthModel, resolve_scenario,
)
from abm.scenario import Scenario, ScenarioError

SERIES_COLUMNS = ["step", "variable", "element", "region", "value"]


@dataclass(frozen=True)
class RunResult:
    """One run: ``series`` in long form (step, variable, element, region, value) and
    ``metrics``, a flat dict of floats."""

    scenario: Scenario
    seed: int
    series: pd.DataFrame
    metrics: dict[str, float]


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


# Columns of mesa.batch_run rows that are not model keywords: its own, the recorded
# variables and (with record_agents=True) each agent's labels and values.
_NOT_PARAMETERS = frozenset({
    "RunId", "iteration", "Step", "AgentID", *RECORDED, *AGENT_LABELS,
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


AGENT_SERIES_COLUMNS = ["step", "agent_type", "agent_id", "region", "sector", "variable", "element", "value"]


def tidy_agent_series(model: RareEarthModel) -> pd.DataFrame:
    """What a model built with ``record_agents=True`` recorded per agent, one row per
    (step, agent, variable, element): columns ``step, agent_type, agent_id, region, sector,
    variable, element, value``. ``sector`` is blank except for importers; a refiner's
    ``separation_capacity_t`` has element ``all``. Units: the ``_t`` variables are t REO
    (per month for flows: mined, exports, sold, need, received, shortfall, recycled;
    capacity in t REO per month), ``spend_usd`` USD per month. Step k is the state after
    month k - 1. Raises ValueError for a model that did not record its agents.
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
            values = np.stack(table[variable].to_numpy()).astype(float)  # [N, E] or [N]
            elements = model.elements if values.ndim == 2 else (ALL,)
            n_e = len(elements)
            frames.append(pd.DataFrame({
                "step": np.repeat(steps, n_e), "agent_type": agent_type.__name__, "agent_id": np.repeat(ids, n_e),
                "region": np.repeat(table["region"].to_numpy(), n_e), "sector": np.repeat(sector, n_e),
                "variable": variable, "element": np.tile(np.array(elements), len(table)), "value": values.reshape(-1),
            }))
    series = pd.concat(frames, ignore_index=True).sort_values(["step", "agent_id", "variable"], kind="stable")
    return _categorical(series.reset_index(drop=True), ("agent_type", "region", "sector", "variable", "element"))[
        AGENT_SERIES_COLUMNS
    ]


def run_metrics(model: RareEarthModel) -> dict[str, float]:
    """Headline figures of a finished run, flat, for tables of many runs: every metric of
    the catalogue ``abm.metrics.METRICS`` (names ``<quantity>_<unit>[_<element or lever>]``,
    units and meanings there), in the order of ``metric_names``.

    Per element (suffix ``_Nd`` ...): world price volatility, peak ratio and maximum
    drawdown; the dominant exporter's domestic price relative to the world's; unmet
    demand outside the exporter (t, fraction, deepest month, resilience loss, months from
    the first month below 95 % service at or after the shock's start until service is
    back, right-censored at the horizon); the
    concentration of supply to importers outside the exporter (Herfindahl index,
    effective number of suppliers, share from the exporter). Without suffix: the same
    service figures for all elements weighted by their 2024 value, and policy costs.
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
        put("shortfall_outside_exporter_fraction", shortfall_fraction(short_out[:, e], demand_out[:, e]), element)
        _service_metrics(put, service_level(short_out[:, e], demand_out[:, e]), start, element)
        origins = model.cumulative_trade[e][:, importers_outside].sum(axis=1)  # [R]
        hhi = herfindahl(origins)
        put("supplier_hhi_index", hhi, element)
        put("effective_suppliers_count", 1.0 / hhi if hhi > 0 else 0.0, element)
        put("supply_from_exporter_fraction", (
            origins[model.regions.index(exporter)] / origins.sum() if origins.sum() > 0 else 0.0
        ), element)
    value = model.reference_price  # USD/kg: weights the elements by what a tonne is worth
    _service_metrics(put, service_level(short_out @ value, demand_out @ value), start)
    put("unserved_value_usd", (short_out @ value).sum() * USD_PER_T_PER_USD_PER_KG)
    put("shortfall_outside_exporter_t", short_out.sum())
    put("mean_tension_index", np.mean(recorded["tension"]))
    policy_cost = np.asarray(recorded["policy_cost"])  # [T, levers] USD
    put("policy_cost_usd", policy_cost.sum())
    for k, lever in enumerate(model.programmes.names):
        put("policy_cost_usd", policy_cost[:, k].sum(), lever)
    return {name: metrics[name] for name in metric_names(model.elements, model.programmes.names)}


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


def run_scenario(scenario: Scenario, seed: int) -> RunResult:
    """Run ``scenario`` to its horizon with ``seed``; the same pair always gives the same result."""
    model = run_model(scenario, seed)
    return RunResult(scenario=model.spec, seed=seed, series=tidy_series(model), metrics=run_metrics(model))


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
