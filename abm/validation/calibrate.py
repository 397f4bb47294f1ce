"""Calibration on the 2010-2014 crisis: a sampled search over uncertain parameters.

The search is an ordinary experiment file (a Latin hypercube over ``market.*`` keys of
the historical scenario), so its candidates are planned, validated and seeded like any
batch. Only parameters whose source in ``abm/data/parameters.csv`` is marked
``[approx]`` may be searched, and only within their documented range: calibration may
choose among plausible values, not invent new ones. Every candidate is scored on the
same replication seeds (common random numbers), by ``calibration_loss``.
"""

from concurrent.futures import Executor
from pathlib import Path

import pandas as pd

from abm.batch.experiment import Experiment
from abm.batch.plan import design_matrix
from abm.data import load_calibration
from abm.output import atomic_write
from abm.progress import Progress
from abm.scenario import ScenarioError
from abm.validation.history import load_targets
from abm.validation.replay import replication_seeds, submit_replays
from abm.validation.scoring import calibration_loss, evaluate_targets


def check_within_ranges(experiment: Experiment) -> None:
    """Refuse a factor that is not an [approx] parameter, or a range outside its own, and
    policies or an ensemble (a calibration searches the scenario's own parameters)."""
    if set(experiment.policies) != {"none"}:
        raise ScenarioError(experiment.source, "policies", sorted(experiment.policies), "no policies in a calibration")
    if experiment.ensemble:
        folder = str(experiment.ensemble[0].path.parent)
        raise ScenarioError(experiment.source, "ensemble", folder, "no ensemble in a calibration (it makes one)")
    parameters = {(p.section, p.name): p for p in load_calibration(experiment.scenario.base_year).parameters}
    for factor in experiment.factors:
        section, _, key = factor.name.partition(".")
        parameter = parameters.get((section, key))
        if parameter is None or "[approx]" not in parameter.source:
            raise ScenarioError(
                experiment.source, f"factors.{factor.name}", factor.name,
                "a section.key whose source in abm/data/parameters.csv is marked [approx]",
            )
        values = factor.levels or (factor.low, factor.high)
        if min(values) < parameter.low or max(values) > parameter.high:
            raise ScenarioError(
                experiment.source, f"factors.{factor.name}", list(values),
                f"values within its documented range [{parameter.low:g}, {parameter.high:g}] (parameters.csv)",
            )


def _score(
    experiment: Experiment, points: list[dict], seeds: list[int], executor: Executor, unit: str, progress: bool
) -> list[dict]:
    """Loss and targets within of each candidate, all on the same seeds; ``unit`` names the
    candidates in the progress lines (``"candidates"``, ``"finalists"``)."""
    targets = load_targets()
    scenarios = [experiment.scenario.with_settings(point, experiment.source) for point in points]
    futures = [submit_replays(scenario, seeds, executor) for scenario in scenarios]
    scores = []
    with Progress("ree calibrate", total=len(points), unit=unit, enabled=progress) as bar:
        for pending in futures:
            results = evaluate_targets(targets, [future.result() for future in pending], experiment.scenario.start_year)
            scores.append({"loss": calibration_loss(results), "within": sum(r.within for r in results)})
            bar.update()
    return scores


def calibrate(
    experiment: Experiment, executor: Executor, finalists: int, final_replications: int, progress: bool = True
) -> pd.DataFrame:
    """Two stages: every candidate of the design on the file's replications, then the
    ``finalists`` best again on ``final_replications`` fresh seeds, so the choice does not
    rest on the luck of a few runs. Returns every candidate, the finalists first in
    order of their final loss (``final_loss`` is empty for the others)."""
    candidates = design_matrix(experiment)
    seeds = replication_seeds(experiment.replications, experiment.seed)
    first = _score(experiment, candidates, seeds, executor, "candidates", progress)
    table = pd.DataFrame([{**point, **score} for point, score in zip(candidates, first, strict=True)])
    table = table.sort_values("loss", kind="stable").reset_index(drop=True)
    chosen = table.head(finalists)
    points = [{name: row[name] for name in candidates[0]} for _, row in chosen.iterrows()]
    final_seeds = replication_seeds(final_replications, experiment.seed + 1)
    second = _score(experiment, points, final_seeds, executor, "finalists", progress)
    table["final_loss"] = [score["loss"] for score in second] + [float("nan")] * (len(table) - len(second))
    table["final_within"] = [score["within"] for score in second] + [float("nan")] * (len(table) - len(second))
    return table.sort_values(["final_loss", "loss"], kind="stable", na_position="last").reset_index(drop=True)


def write_calibration(table: pd.DataFrame, path: Path) -> Path:
    """Write the candidates table atomically; return its path."""
    atomic_write(path, lambda h: table.to_csv(h, index=False))
    return path
