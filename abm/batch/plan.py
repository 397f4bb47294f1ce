"""From an experiment to runs: design points (x ensemble members) x policies x replications.

Run ids are hashes of what a run is (design point, policy, replication), never a
counter, so a rerun finds the runs it already has. Seeds come from numpy's
SeedSequence keyed by (design point, replication) and not by policy: every policy
meets the same random numbers, so its effect is a paired difference. A calibration
(``shared_seeds``) keys them by replication alone, so every candidate meets them too.
With an ensemble, a design point is one per member (its ``ensemble_member`` factor is
part of the point), so members differ in point ids, seeds and run ids; without one,
points are the design's rows.
"""

import hashlib
import itertools
import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from abm.batch.experiment import ENSEMBLE_FACTOR, Experiment
from abm.scenario import Scenario


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to make one run (picklable, self-contained): ``point`` is
    the design point as the store records it (``factor.<name>``, ``ensemble_member``
    among them under an ensemble), ``settings`` what the run applies to ``scenario``."""

    run_id: str
    point_id: str
    point: dict[str, Any]
    policy: str
    replication: int
    seed: int
    scenario: Scenario
    settings: dict[str, Any]
    record_every: int
    series_variables: tuple[str, ...]
    record_agents: bool = False
    targets: str = ""  # a half of the historical targets to measure too ("" for none)


def _digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:length]


def salib_problem(experiment: Experiment) -> dict[str, Any]:
    """The factor ranges in the form SALib samples and analyses."""
    return {
        "num_vars": len(experiment.factors),
        "names": [f.name for f in experiment.factors],
        "bounds": [[f.low, f.high] for f in experiment.factors],
    }


def design_matrix(experiment: Experiment) -> list[dict[str, Any]]:
    """The design's rows in order (a sampled design may repeat a row; each row counts,
    e.g. for Morris elementary effects)."""
    if experiment.design == "full_factorial":
        names = [f.name for f in experiment.factors]
        return [dict(zip(names, levels, strict=True)) for levels in itertools.product(*(f.levels for f in experiment.factors))]
    problem = salib_problem(experiment)
    with warnings.catch_warnings():  # sample sizes are checked when the experiment loads
        warnings.filterwarnings("ignore", category=UserWarning, module=r"SALib\.")
        if experiment.design == "latin_hypercube":
            from SALib.sample import latin

            rows = latin.sample(problem, experiment.samples, seed=experiment.seed)
        elif experiment.design == "sobol":
            from SALib.sample import sobol

            rows = sobol.sample(problem, experiment.samples, calc_second_order=False, seed=experiment.seed)
        else:
            from SALib.sample import morris

            rows = morris.sample(problem, experiment.samples, num_levels=4, seed=experiment.seed)
    points = []
    for row in rows:
        points.append({
            f.name: int(round(value)) if f.integer else float(value) for f, value in zip(experiment.factors, row, strict=True)
        })
    return points


def point_id(point: dict[str, Any]) -> str:
    return _digest(point, 12)


def member_point(row: dict[str, Any], member: str) -> dict[str, Any]:
    """The design point of design row ``row`` run with ensemble member ``member``."""
    return {ENSEMBLE_FACTOR: member, **row}


def run_points(experiment: Experiment) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(point, settings) per distinct design row, crossed with every ensemble member: the
    point as recorded (with ``ensemble_member``) and what it sets, the member's settings
    overridden by the row's factors; without an ensemble both are the row."""
    rows = list({point_id(row): row for row in design_matrix(experiment)}.values())
    if not experiment.ensemble:
        return [(row, row) for row in rows]
    return [(member_point(row, m.name), {**m.settings, **row}) for row in rows for m in experiment.ensemble]


def plan_runs(experiment: Experiment) -> list[RunTask]:
    """One task per distinct design point (x member) x policy x replication, in a stable
    order; a task's settings are its point's, overridden by its policy's."""
    tasks = []
    for point, point_settings in run_points(experiment):
        pid = point_id(point)
        for replication in range(experiment.replications):
            key = (replication,) if experiment.shared_seeds else (int(pid, 16), replication)
            sequence = np.random.SeedSequence(experiment.seed, spawn_key=key)
            seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            for policy, settings in experiment.policies.items():
                tasks.append(RunTask(
                    run_id=_digest({"point": point, "policy": policy, "replication": replication}),
                    point_id=pid, point=point, policy=policy, replication=replication, seed=seed,
                    scenario=experiment.scenario, settings={**point_settings, **settings},
                    record_every=experiment.record_every, series_variables=experiment.series_variables,
                    record_agents=experiment.record_agents, targets=experiment.targets,
                ))
    return tasks
