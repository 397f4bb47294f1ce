"""A holdout: a forward scenario of a recent episode run over the calibrated ensemble, as
an out-of-sample prediction (``ree validate --holdout 2025``).

Each member's ``[market]`` settings are applied over the scenario and every member runs
the same seeds (common random numbers), so members differ in their parameters only.
A run keeps only what the holdout report plots (a few kilobytes): the oxide prices
outside and inside the licensing nation, that nation's exports of the products its
licences cover, and the magnet shortfall of end users by region.
"""

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from abm.model import WORLD
from abm.progress import Progress
from abm.run import run_model
from abm.scenario import Event, Scenario, ScenarioError, _licensed_products
from abm.validation.ensemble import Member

LICENCE = "licence"
MAGNET = "magnet"  # the stage magnet users buy (their only product, RareEarthModel._build_end_users)


@dataclass(frozen=True)
class Licences:
    """The licence events of a scenario: their nation, the elements and stages they name
    (in the order the events name them), the products they cover and the months they are
    in force, ``(first, end)`` with ``end`` exclusive, merged where they touch."""

    nation: str
    elements: tuple[str, ...]
    stages: tuple[str, ...]
    products: tuple[str, ...]
    windows: tuple[tuple[int, int], ...]
    events: tuple[Event, ...]


def scenario_licences(scenario: Scenario, source: str) -> Licences:
    """The licences of ``scenario``; a ScenarioError on ``source`` unless it has at least
    one licence event and all of them are one nation's."""
    events = tuple(event for event in scenario.events if event.kind == LICENCE)
    if not events:
        raise ScenarioError(
            source, "events", [event.kind for event in scenario.events],
            "at least one licence event (the holdout predicts a licence episode)",
        )
    nations = sorted({event.nation for event in events})
    if len(nations) > 1:
        raise ScenarioError(source, "events", nations, "licence events of one nation")
    windows: list[tuple[int, int]] = []
    for event in sorted(events, key=lambda e: e.start):
        first, end = event.start, min(event.start + event.months, scenario.horizon_months)
        if windows and first <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((first, end))
    return Licences(
        nation=nations[0],
        elements=tuple(dict.fromkeys(e for event in events for e in event.elements)),
        stages=tuple(dict.fromkeys(s for event in events for s in event.stages)),
        products=tuple(dict.fromkeys(p for event in events for p in _licensed_products(scenario, event))),
        windows=tuple(windows),
        events=events,
    )


@dataclass(frozen=True)
class HoldoutRun:
    """One run of a holdout scenario. Row ``m`` of every array is month ``m`` (month 0 the
    scenario's first month; the model's step ``m + 1``); ``M`` months in all.

    ``world_price`` and ``nation_price`` [M, E] USD/kg of each element's oxide on the
    world market (importers outside the licensing nation) and inside the nation (its
    zone's clearing price). ``exports`` [M, K] t of oxide content per month that the
    nation shipped abroad in the products its licences cover, one column per
    ``export_columns`` pair (element, stage): the covered products of that stage summed,
    each weighted by its content of the element (pairs with no content left out).
    ``magnet_shortfall`` [M, R] t of magnets per month (all grades) that magnet users in
    each of ``regions`` needed and did not get (``product_shortfall`` of the magnet
    products)."""

    seed: int
    elements: tuple[str, ...]
    world_price: np.ndarray
    nation_price: np.ndarray
    export_columns: tuple[tuple[str, str], ...]
    exports: np.ndarray
    regions: tuple[str, ...]
    magnet_shortfall: np.ndarray


def holdout_run(scenario: Scenario, seed: int, licences: Licences) -> HoldoutRun:
    """Run ``scenario`` with ``seed`` and keep what the holdout report plots."""
    model = run_model(scenario, seed)
    recorded = model.datacollector.model_vars
    price = np.asarray(recorded["price"], dtype=float)[1:]  # [M, E, Z]
    nation = model.regions.index(licences.nation)
    flow = np.asarray(recorded["product_flow"], dtype=float)[1:, :, nation]  # [M, P, to]
    abroad = flow.sum(axis=2) - flow[:, :, nation]  # [M, P] t of product shipped out of the nation
    stage, covered = np.array(model.product_stage), np.isin(model.products, licences.products)
    columns, exports = [], []
    for element in (e for e in licences.elements if e in model.elements):
        content = model.chain.content[:, model.elements.index(element)]  # [P] t oxide per t product
        for name in licences.stages:
            weight = np.where(covered & (stage == name), content, 0.0)
            if weight.any():
                columns.append((element, name))
                exports.append(abroad @ weight)
    shortfall = np.asarray(recorded["product_shortfall"], dtype=float)[1:]  # [M, P, R]
    return HoldoutRun(
        seed=seed,
        elements=model.elements,
        world_price=price[:, :, model.price_zones.index(WORLD)],
        nation_price=price[:, :, model.price_zones.index(licences.nation)],
        export_columns=tuple(columns),
        exports=np.stack(exports, axis=1),
        regions=model.regions,
        magnet_shortfall=shortfall[:, stage == MAGNET].sum(axis=1),
    )


def run_holdout(
    scenario: Scenario,
    members: Sequence[Member],
    seeds: Sequence[int],
    executor: Executor,
    licences: Licences,
    progress: Progress | None = None,
) -> dict[str, list[HoldoutRun]]:
    """Every member's runs of ``scenario`` (its settings applied over the scenario's),
    in seed order, keyed by member name in ensemble order. Every member's settings are
    checked before any run starts; all runs are submitted at once so members share the
    workers, and each is counted on ``progress`` as it comes back."""
    scenarios = [scenario.with_settings(member.settings, member.path) for member in members]
    futures = {
        member.name: [executor.submit(holdout_run, setting, seed, licences) for seed in seeds]
        for member, setting in zip(members, scenarios, strict=True)
    }
    runs: dict[str, list[HoldoutRun]] = {}
    for name, pending in futures.items():
        runs[name] = []
        for future in pending:
            runs[name].append(future.result())
            if progress is not None:
                progress.update()
    return runs
