"""Calibration on the build-up of the 2010-2011 crisis: a sampled search, run as a batch.

The search is an ordinary experiment file (a Latin hypercube over ``market.*`` keys of
the historical scenario), so its candidates are planned, validated and seeded like any
batch. Only parameters whose source in ``abm/data/parameters.csv`` is marked
``[approx]`` may be searched, and only within their documented range: calibration may
choose among plausible values, not invent new ones.

It sees the calibration half of the record only: its runs stop at the last month of
the build-up (June 2011), so no simulated month of the decline exists to fit, and only
the ``calibration`` targets of ``abm/data/history/targets.csv`` are measured. It runs
through the batch store (``abm.batch``): a killed calibration resumes without redoing
finished runs, a run that raises becomes a FAILED record (its candidate is ranked
last), and progress shows as a batch's. Every candidate meets the same replication
seeds (common random numbers) and is scored by ``calibration_loss``.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from abm.batch.experiment import Experiment
from abm.batch.runner import run_batch
from abm.data import load_calibration, month_index
from abm.output import atomic_write
from abm.scenario import ScenarioError
from abm.validation.history import load_targets
from abm.validation.scoring import TargetResult, calibration_loss

HALF = "calibration"
SCORES = ("loss", "within", "failed_runs")


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


def calibration_batch(experiment: Experiment) -> Experiment:
    """The search as the batch that runs it: the scenario cut at the end of the build-up,
    every candidate on the same seeds, each run measuring the calibration targets, and
    no series stored (the targets are all the search reads)."""
    start_year = experiment.scenario.start_year
    last = max(month_index(t.end, start_year) for t in load_targets(HALF))
    scenario = experiment.scenario.with_settings({"horizon_months": last + 1}, experiment.source)
    return dataclasses.replace(experiment, scenario=scenario, shared_seeds=True, targets=HALF, series_variables=())


def score_candidates(experiment: Experiment, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate of the batch's ``metrics`` table (a store's metrics.parquet):
    its settings, loss, targets holding and failed runs, best first. A candidate with
    a failed run has an infinite loss: it is ranked after every whole one."""
    targets = load_targets(HALF)
    factors = [f"factor.{f.name}" for f in experiment.factors]
    rows = []
    for _, runs in metrics.groupby("point_id", sort=False):
        ok = runs[runs["status"] == "ok"].sort_values("replication")
        failed = len(runs) - len(ok)
        results = [TargetResult(t, ok[f"target.{t.name}"].to_numpy(dtype=float)) for t in targets]
        whole = failed == 0 and len(ok) > 0
        rows.append({
            **{name.removeprefix("factor."): runs[name].iloc[0] for name in factors},
            "loss": calibration_loss(results) if whole else np.inf,
            "within": sum(r.within for r in results) if whole else 0,
            "failed_runs": failed,
        })
    return pd.DataFrame(rows).sort_values(["loss", *[f.name for f in experiment.factors]], kind="stable").reset_index(drop=True)


def calibrate(
    experiment: Experiment, store: Path, executor: str = "processes", workers: int | None = None,
    resume: bool = False, progress: bool = True,
) -> pd.DataFrame:
    """Run (or finish) the calibration batch into ``store`` and score its candidates;
    returns the table of every candidate, best first (``score_candidates``)."""
    batch = calibration_batch(experiment)
    finished = run_batch(batch, store, executor=executor, workers=workers, resume=resume, progress=progress)
    return score_candidates(batch, pd.read_parquet(finished.folder / "metrics.parquet"))


def write_calibration(table: pd.DataFrame, path: Path) -> Path:
    """Write the candidates table atomically; return its path."""
    atomic_write(path, lambda h: table.to_csv(h, index=False))
    return path
