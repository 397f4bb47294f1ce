"""Running a planned batch: submit tasks, store each run as it finishes, show progress.

``run_task`` is the unit of work a worker executes; it never raises, so one bad run
becomes a FAILED record and the batch goes on.
"""

import hashlib
import importlib.metadata
import platform
import subprocess
import time
import traceback
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.batch.executors import open_executor
from abm.batch.experiment import Experiment
from abm.batch.plan import RunTask, plan_runs
from abm.batch.store import Store
from abm.scenario import ScenarioError


def _base_record(task: RunTask) -> dict[str, Any]:
    """What identifies a run in every record, succeeded or failed."""
    return {
        "run_id": task.run_id, "point_id": task.point_id, "policy": task.policy,
        "replication": task.replication, "seed": task.seed,
        **{f"factor.{name}": value for name, value in task.point.items()},
    }


def run_task(task: RunTask) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One run: its record (design, seed, status, timing, metrics) and recorded series."""
    from abm.run import run_metrics, run_model, tidy_series

    started = time.perf_counter()
    record = _base_record(task)
    try:
        model = run_model(task.scenario.with_settings(task.settings), task.seed)
        series = tidy_series(model)
        series = series[series["variable"].isin(task.series_variables) & (series["step"] % task.record_every == 0)]
        series.insert(0, "run_id", task.run_id)
        record.update(run_metrics(model), status="ok", error="")
    except Exception as error:  # noqa: BLE001 - any failure becomes a FAILED record
        series = None
        record.update(status="failed", error=f"{type(error).__name__}: {error} | {traceback.format_exc(limit=3)!r}")
    record["seconds"] = time.perf_counter() - started
    return record, series


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("rare-earth-abm", "mesa", "numpy", "pandas", "pyarrow"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


PACKAGE = Path(__file__).resolve().parents[1]


# What a run's numbers depend on: the model's modules, its agents, its calibration loader
# and tables (not the batch engine, the CLI, figures, the browser app or the validation
# record around them).
MODEL_FILES = (
    "__init__.py", "levers.py", "market.py", "metrics.py", "model.py", "policy.py", "programmes.py", "run.py",
    "scenario.py", "schema.py", "agents/*.py", "data/*.py", "data/*.csv", "data/base_*/*.csv",
)


def model_code_digest(package: Path = PACKAGE) -> str:
    """A digest of the model's code and data: finished runs made by other model code are
    never silently extended."""
    digest = hashlib.sha256()
    for path in sorted({path for pattern in MODEL_FILES for path in package.glob(pattern)}):
        digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def experiment_hash(experiment: Experiment) -> str:
    """What the plan depends on: the experiment file and the resolved base scenario."""
    text = experiment.source.read_bytes() + repr(experiment.scenario).encode()
    return hashlib.sha256(text).hexdigest()


def run_batch(
    experiment: Experiment, out: Path, executor: str = "processes", workers: int | None = None,
    scheduler: str | None = None, resume: bool = False, progress: bool = True,
) -> Store:
    """Run every planned run not already in ``out``; return the consolidated store."""
    store = Store(out)
    digest = experiment_hash(experiment)
    if resume and not store.exists():
        raise ScenarioError(out, "--resume", str(out), "an existing results store to resume")
    if store.exists() and store.manifest().get("experiment_hash") != digest:
        raise ScenarioError(out, "store", str(out), "a store made by this experiment file (use another --out)")
    code = model_code_digest()
    store.clear_unfinished_writes()
    done = store.finished()
    # Finished runs of other model code would mix with new ones; a store without finished
    # runs (a fresh checkout holds only its tables) is simply remade.
    if done and store.manifest().get("model_code") != code:
        raise ScenarioError(
            out, "store", str(out), "finished runs made by this model code (delete the folder or use another --out)"
        )
    tasks = plan_runs(experiment)
    todo = [t for t in tasks if t.run_id not in done]
    started = time.time()
    with open_executor(executor, workers, scheduler) as pool:  # validates the executor before writing
        manifest = {
            "experiment": experiment.name, "experiment_file": str(experiment.source),
            "experiment_hash": digest, "model_code": code, "scenario_file": str(experiment.scenario_path),
            "design": experiment.design, "replications": experiment.replications, "root_seed": experiment.seed,
            "runs": len(tasks), "versions": _versions(), "git_commit": _git_commit(),
            "executor": executor, "workers": workers, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seeds": sorted({int(t.seed) for t in tasks}),
        }
        store.write_manifest({**store.manifest(), **manifest})
        _execute(pool, todo, store, progress, total=len(tasks), already=len(tasks) - len(todo))
    store.consolidate()
    elapsed = time.time() - started
    store.write_manifest({
        **store.manifest(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": elapsed,
        "runs_this_session": len(todo), "failed": len(store.failures()),
    })
    return store


def _execute(pool, todo: list[RunTask], store: Store, progress: bool, total: int, already: int) -> None:
    from tqdm import tqdm

    failures = 0
    bar = tqdm(total=total, initial=already, disable=not progress, unit="run", dynamic_ncols=True)
    futures = {pool.submit(run_task, task): task for task in todo}
    for future in as_completed(futures):
        task = futures[future]
        try:
            record, series = future.result()
        except Exception as error:  # noqa: BLE001 - a worker that died
            record = {**_base_record(task), "status": "failed", "error": f"{type(error).__name__}: {error}", "seconds": np.nan}
            series = None
        store.write_run(record, series)
        failures += record["status"] != "ok"
        bar.set_postfix(failed=failures)
        bar.update(1)
    bar.close()
