"""Replications of a historical scenario, reduced to what validation compares.

A run keeps only the exporter's and the world's price paths, the exporter's exports
and quota, and the basket weights: a few kilobytes, so hundreds of runs can come back
from worker processes. Seeds are derived from one validation seed, so a rerun, or a
calibration candidate, sees the same random numbers (common random numbers).
"""

from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np

from abm.model import WORLD, RareEarthModel
from abm.progress import Progress
from abm.run import run_model
from abm.scenario import Scenario

VALIDATION_SEED = 20100701  # the H2-2010 quota cut; any fixed number would do


def replication_seeds(replications: int, seed: int = VALIDATION_SEED) -> list[int]:
    """``replications`` independent run seeds from one seed (NumPy SeedSequence)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(replications)]


@dataclass(frozen=True)
class Replay:
    """One run of a historical scenario. Row ``m`` of a price is the price posted for
    month ``m`` (row 0 the base-year price); row ``m + 1`` of ``exports`` and ``quota``
    is what month ``m`` exported and allowed, t of the modelled oxides."""

    seed: int
    elements: tuple[str, ...]
    export_price: np.ndarray  # [T, E] USD/kg, the world market outside the exporter
    domestic_price: np.ndarray  # [T, E] USD/kg, inside the exporter
    exports: np.ndarray  # [T, E] t the exporter's customs saw leave
    quota: np.ndarray  # [T, E] t its export cap allowed, NaN without a quota
    basket_weight: np.ndarray  # [E] base-year value of each oxide bought outside the exporter


def replay(scenario: Scenario, seed: int) -> Replay:
    """Run ``scenario`` with ``seed`` and keep what validation needs."""
    return replay_of(run_model(scenario, seed), seed)


def replay_of(model: RareEarthModel, seed: int) -> Replay:
    """What validation needs from a finished run of a historical scenario."""
    recorded = model.datacollector.model_vars
    exporter = model.spec.shock.exporter
    price = np.asarray(recorded["price"], dtype=float)  # [T, E, Z]
    column = model.exporters.index(exporter)
    demand = np.asarray(recorded["demand"], dtype=float)[0]  # [E, importing regions]
    outside = [i for i, region in enumerate(model.importing_regions) if region != exporter]
    return Replay(
        seed=seed,
        elements=model.elements,
        export_price=price[:, :, model.price_zones.index(WORLD)],
        domestic_price=price[:, :, model.price_zones.index(exporter)],
        exports=np.asarray(recorded["exports"], dtype=float)[:, :, column],
        quota=np.asarray(recorded["quota"], dtype=float)[:, :, column],
        basket_weight=demand[:, outside].sum(axis=1) * model.reference_price,
    )


def submit_replays(scenario: Scenario, seeds: Sequence[int], executor: Executor) -> list[Future]:
    """Start every seed's replay on ``executor`` (collect them later, so that several
    scenarios can share the workers)."""
    return [executor.submit(replay, scenario, seed) for seed in seeds]


def replay_many(
    scenario: Scenario, seeds: Sequence[int], executor: Executor, progress: Progress | None = None
) -> list[Replay]:
    """Every seed's replay, in seed order, run on ``executor``; each one counted on
    ``progress`` as it comes back."""
    replays = []
    for future in submit_replays(scenario, seeds, executor):
        replays.append(future.result())
        if progress is not None:
            progress.update()
    return replays
