"""Running a scenario to the end and turning what it recorded into tidy tables and metrics."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from abm.metrics import (
    USD_PER_T_PER_USD_PER_KG,
    annualised_volatility, herfindahl, max_drawdown, peak_to_base_ratio, recovery_months, resilience_loss,
    service_level, shortfall_depth, shortfall_fraction,
)
from abm.model import ALL, RECORDED, WITHOUT_ELEMENT, WORLD, RareEarthModel, resolve_scenario
from abm.scenario import Scenario
SERIES_COLUMNS = ["step", "variable", "element", "region", "value"]


@dataclass(frozen=True)
class RunResult:
    """One run: ``series`` in long form (step, variable, element, region, value) and
    ``metrics``, a flat dict of floats."""

    scenario: Scenario
    seed: int
    series: pd.DataFrame
    metrics: dict[str, float]


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
    labels = model.labels()
    frames = []
    for name in RECORDED:
        values = np.asarray(recorded[name], dtype=float)
        steps = values.shape[0]
        if name in WITHOUT_ELEMENT:  # [T, K]: no element axis
            values = values[:, None, :]
            elements: tuple[str, ...] = (ALL,)
        else:
            elements = model.elements
            if values.ndim == 2:  # [T, E]: world totals
                values = values[:, :, None]
        regions = labels[name]
        n_e, n_r = values.shape[1], values.shape[2]
        frames.append(
            pd.DataFrame(
                {
                    "step": np.repeat(np.arange(steps), n_e * n_r),
                    "variable": name,
                    "element": np.tile(np.repeat(np.array(elements), n_r), steps),
                    "region": np.tile(np.array(regions), steps * n_e),
                    "value": values.reshape(-1),
                }
            )
        )
    series = pd.concat(frames, ignore_index=True)
    for column in ("variable", "element", "region"):
        series[column] = series[column].astype("category")
    return series[SERIES_COLUMNS]


def run_metrics(model: RareEarthModel) -> dict[str, float]:
    """Headline figures of a finished run, flat, for tables of many runs.

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
    for e, element in enumerate(model.elements):
        world_price = price[:, e, world]
        metrics[f"world_price_volatility_{element}"] = annualised_volatility(world_price)
        metrics[f"world_price_peak_ratio_{element}"] = peak_to_base_ratio(world_price, world_price[0])
        metrics[f"world_price_max_drawdown_{element}"] = max_drawdown(world_price)
        if exporter in model.price_zones:
            domestic = price[:, e, model.price_zones.index(exporter)]
            metrics[f"exporter_to_world_price_ratio_{element}"] = float(np.mean(domestic / world_price))
        metrics[f"shortfall_outside_exporter_t_{element}"] = float(short_out[:, e].sum())
        metrics[f"shortfall_fraction_outside_exporter_{element}"] = shortfall_fraction(short_out[:, e], demand_out[:, e])
        service = service_level(short_out[:, e], demand_out[:, e])
        metrics[f"shortfall_depth_{element}"] = shortfall_depth(service)
        metrics[f"resilience_loss_months_{element}"] = resilience_loss(service)
        metrics[f"recovery_months_{element}"], censored = recovery_months(service, start)
        metrics[f"recovery_censored_{element}"] = float(censored)
        origins = model.cumulative_trade[e][:, importers_outside].sum(axis=1)  # [R]
        hhi = herfindahl(origins)
        metrics[f"supplier_hhi_{element}"] = hhi
        metrics[f"effective_suppliers_{element}"] = 1.0 / hhi if hhi > 0 else 0.0
        metrics[f"share_from_exporter_{element}"] = (
            float(origins[model.regions.index(exporter)] / origins.sum()) if origins.sum() > 0 else 0.0
        )
    value = model.reference_price  # USD/kg: weights the elements by what a tonne is worth
    service = service_level(short_out @ value, demand_out @ value)
    metrics["shortfall_depth"] = shortfall_depth(service)
    metrics["resilience_loss_months"] = resilience_loss(service)
    metrics["recovery_months"], censored = recovery_months(service, start)
    metrics["recovery_censored"] = float(censored)
    metrics["unserved_value_usd"] = float((short_out @ value).sum() * USD_PER_T_PER_USD_PER_KG)
    metrics["shortfall_outside_exporter_t"] = float(short_out.sum())
    metrics["mean_tension"] = float(np.mean(recorded["tension"]))
    policy_cost = np.asarray(recorded["policy_cost"])  # [T, levers] USD
    metrics["policy_cost_usd"] = float(policy_cost.sum())
    for k, lever in enumerate(model.programmes.names):
        metrics[f"policy_cost_usd_{lever}"] = float(policy_cost[:, k].sum())
    return metrics


def run_model(scenario: Scenario, seed: int) -> RareEarthModel:
    """A model of ``scenario`` with ``seed``, stepped to its horizon."""
    model = RareEarthModel(rng=int(seed), scenario=scenario)
    while model.running:
        model.step()
    return model


def run_scenario(scenario: Scenario, seed: int) -> RunResult:
    """Run ``scenario`` to its horizon with ``seed``; the same pair always gives the same result."""
    model = run_model(scenario, seed)
    return RunResult(scenario=model.spec, seed=seed, series=tidy_series(model), metrics=run_metrics(model))


def evaluate(seed: int = 0, scenario: Scenario | str | None = None, **params: object) -> dict[str, float]:
    """One run as a plain function ``(params) -> outcomes`` for exploratory-modelling tools.

    ``params`` are model keywords (``quota_cut``, ``stockpile_months`` ...) or scenario keys
    (``market.short_run_elasticity``); ``scenario`` is the base (a path or Scenario, default
    the built-in defaults). EMA Workbench calls it as ``Model("ree", function=evaluate)``.
    """
    return run_metrics(run_model(resolve_scenario(scenario).with_settings(params), seed))
