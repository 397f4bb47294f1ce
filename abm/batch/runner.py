"""Running a planned batch: submit tasks, store each run as it finishes, show progress.

``run_task`` is the unit of work a worker executes; it never raises, so one bad run
becomes a FAILED record and the batch goes on. A worker that dies (killed, out of
memory) costs its runs one retry each; a run that kills its worker twice is FAILED.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abm.batch.executors import interrupts_deferred, open_executor
from abm.batch.experiment import Experiment
from abm.batch.plan import RunTask, plan_runs
from abm.batch.store import Store, store_error
from abm.progress import Progress
from abm.scenario import ScenarioError


def _base_record(task: RunTask) -> dict[str, Any]:
    """What identifies a run in every record, succeeded or failed."""
    return {
        "run_id": task.run_id, "point_id": task.point_id, "policy": task.policy,
        "replication": task.replication, "seed": task.seed,
        **{f"factor.{name}": value for name, value in task.point.items()},
    }


def run_task(task: RunTask) -> tuple[dict[str, Any], pd.DataFrame | None, pd.DataFrame | None]:
    """One run: its record (design, seed, status, timing, metrics), its recorded series and,
    when the experiment records agents, every agent's series (else None); each table
    keeps the recorded steps only and starts with the run id."""
    from abm.run import run_metrics, run_model, tidy_agent_series, tidy_series

    started = time.perf_counter()
    record = _base_record(task)
    series = agents = None
    try:
        model = run_model(task.scenario.with_settings(task.settings), task.seed, record_agents=task.record_agents)
        series = tidy_series(model)
        series = _recorded(series[series["variable"].isin(task.series_variables)], task)
        if task.record_agents:
            agents = _recorded(tidy_agent_series(model), task)
        record.update(run_metrics(model), status="ok", error="")
        if task.targets:
            from abm.validation.targets import target_metrics

            record.update(target_metrics(model, task.seed, task.targets))
    except Exception as error:  # noqa: BLE001 - any failure becomes a FAILED record
        series = agents = None
        record.update(status="failed", error=f"{type(error).__name__}: {error} | {traceback.format_exc(limit=3)!r}")
    record["seconds"] = time.perf_counter() - started
    return record, series, agents


def _recorded(table: pd.DataFrame, task: RunTask) -> pd.DataFrame:
    """The rows of ``table`` at the recorded steps, headed by the run id."""
    table = table[table["step"] % task.record_every == 0].reset_index(drop=True)
    table.insert(0, "run_id", task.run_id)
    return table


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
STOP_POLL_SECONDS = 0.1  # how often a wait for runs looks for a Ctrl-C or SIGTERM it holds


# What a run's numbers depend on: the model's modules, its agents, its calibration loader
# and tables (not the batch engine, the CLI, figures, the browser app or the validation
# record around them).
MODEL_FILES = (
    "__init__.py", "chain.py", "clearing.py", "counterfactual.py", "hub_roots.py", "levers.py", "metrics.py", "model.py", "policy.py",
    "programmes.py", "run.py", "scenario.py", "schema.py", "trade.py", "agents/*.py", "data/*.py", "data/*.csv",
    "data/base_*/*.csv",
)


def model_code_digest(package: Path = PACKAGE) -> str:
    """A digest of the model's code and data: finished runs made by other model code are
    never silently extended."""
    digest = hashlib.sha256()
    for path in sorted({path for pattern in MODEL_FILES for path in package.glob(pattern)}):
        digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def experiment_hash(experiment: Experiment) -> str:
    """What the plan depends on, from the experiment's content (not a file's bytes, so an
    experiment built in Python has one too): its name, design, samples, factors,
    policies, root seed, recording, the resolved base scenario and, with an ensemble, each
    member's name and settings (absent without one, so stores made before ensembles keep
    their hash). Replications are left out: a store records them on their own, so that
    changing them is refused with its own message (and done with ``force``)."""
    content = {
        "name": experiment.name, "design": experiment.design, "samples": experiment.samples,
        "factors": [dataclasses.asdict(factor) for factor in experiment.factors], "policies": experiment.policies,
        "seed": experiment.seed, "record_every": experiment.record_every, "series": experiment.series_variables,
        "record_agents": experiment.record_agents,
        "scenario": repr(experiment.scenario),
    }
    # Only when set, so that every store made before they existed keeps its hash.
    if experiment.shared_seeds or experiment.targets:
        content.update(shared_seeds=experiment.shared_seeds, targets=experiment.targets)
    if experiment.ensemble:
        content["ensemble"] = {member.name: member.settings for member in experiment.ensemble}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=repr).encode()).hexdigest()


def _check_store(store: Store, experiment: Experiment, digest: str, resume: bool, force: bool) -> None:
    """Refuse a store this batch must not extend (a ScenarioError); reads only."""
    out = store.folder
    store.check_folder()
    if resume and not store.exists():
        raise ScenarioError(out, "--resume", str(out), "an existing results store to resume")
    manifest = store.manifest()
    if store.exists() and manifest.get("experiment_hash") != digest:
        raise ScenarioError(
            out, "store", str(out), "a store made by this experiment (same content, base scenario and ensemble; stores made "
            "before ree hashed experiment content must be remade): use another --out or delete the folder",
        )
    stored = manifest.get("replications", experiment.replications)
    if stored != experiment.replications and not force:
        raise ScenarioError(
            out, "replications", experiment.replications,
            f"the store's {stored} replications (use --out for a new folder, or --force to change this store)",
        )
    # Finished runs of other model code would mix with new ones; a store without finished
    # runs (a fresh checkout holds only its tables) is simply remade.
    if store.finished() and manifest.get("model_code") != model_code_digest():
        raise ScenarioError(
            out, "store", str(out), "finished runs made by this model code (delete the folder or use another --out)"
        )


def saved_runs(experiment: Experiment, out: Path) -> tuple[int, int]:
    """How many of the experiment's planned runs are finished in ``out``, and how many
    are planned (what an interrupted batch reports)."""
    planned = {task.run_id for task in plan_runs(experiment)}
    return len(planned & Store(out).finished()), len(planned)


def run_batch(
    experiment: Experiment, out: Path, executor: str = "processes", workers: int | None = None,
    scheduler: str | None = None, resume: bool = False, progress: bool = True, force: bool = False,
) -> Store:
    """Run every planned run not already in ``out``; return the consolidated store.

    The store is locked for the whole batch (a second batch on it is refused). A store of
    another experiment, of other model code, or with other replications (unless
    ``force``: then its tables hold exactly this plan's runs) is refused with a
    ScenarioError before anything is written; so is a store that cannot be written
    (read-only, disk full). Ctrl-C (KeyboardInterrupt) ends the workers at once and
    propagates; every run written so far stays, whole."""
    store = Store(out)
    digest = experiment_hash(experiment)
    _check_store(store, experiment, digest, resume, force)  # before the lock, so a refusal writes nothing
    tasks = plan_runs(experiment)
    planned = {task.run_id for task in tasks}
    started = time.time()
    with open_executor(executor, workers, scheduler) as pool:
        try:
            with store.lock():
                _check_store(store, experiment, digest, resume, force)  # again, now that no one else writes
                store.clear_unfinished_writes()
                for part in store.quarantine_damaged():
                    _note(f"{part}: damaged part moved to {store.quarantine}/; its run is made again")
                store.write_manifest({**store.manifest(), **_manifest(experiment, digest, tasks, executor, workers)})
                session = _run_all(pool, tasks, planned, store, progress)
                store.write_manifest({
                    **store.manifest(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "seconds": time.time() - started, "runs_this_session": session,
                    "failed": len(store.failures(planned)),
                })
        except OSError as error:  # a read-only folder, a full disk
            raise store_error(out, error) from None
    return store


def _run_all(pool: Executor, tasks: list[RunTask], planned: set[str], store: Store, progress: bool) -> int:
    """Run what is not finished and consolidate; a part found unreadable while consolidating
    is quarantined and its run made once more. Returns how many runs this session made."""
    session = 0
    for attempt in range(2):
        done = store.finished()
        todo = [task for task in tasks if task.run_id not in done]
        with Progress("ree batch", total=len(tasks), initial=len(tasks) - len(todo), enabled=progress) as bar:
            _execute(pool, todo, store, bar)
        session += len(todo)
        damaged = store.consolidate(planned)
        for part in damaged:
            fate = "its run is made again" if attempt == 0 else "its run is left out (is the disk failing?)"
            _note(f"{part}: unreadable part moved to {store.quarantine}/; {fate}")
        if not damaged:
            break
    return session


def _manifest(
    experiment: Experiment, digest: str, tasks: list[RunTask], executor: str, workers: int | None
) -> dict[str, Any]:
    """What made the store: the experiment, the model code, the plan and the machine."""
    return {
        "experiment": experiment.name, "experiment_file": str(experiment.source),
        "experiment_hash": digest, "model_code": model_code_digest(), "scenario_file": str(experiment.scenario_path),
        "design": experiment.design, "replications": experiment.replications, "root_seed": experiment.seed,
        "runs": len(tasks), "versions": _versions(), "git_commit": _git_commit(),
        "executor": executor, "workers": workers, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seeds": sorted({int(t.seed) for t in tasks}),
    }


def _note(text: str) -> None:
    """One line on stderr about the store, for the person running the batch."""
    print(f"ree: {text}", file=sys.stderr, flush=True)


def _failed_record(task: RunTask, error: BaseException) -> dict[str, Any]:
    """The FAILED record of a run whose worker died (the run itself never returned)."""
    return {**_base_record(task), "status": "failed", "error": f"{type(error).__name__}: {error}", "seconds": np.nan}


def _execute(pool: Executor, todo: list[RunTask], store: Store, bar: Progress) -> None:
    """Run ``todo`` on ``pool``, writing each run as it finishes.

    At most ``pool.in_flight`` tasks are submitted ahead of what is written (one for the
    serial executor, which runs a task as it is submitted), so a kill loses little and a
    long plan costs no memory. When a worker dies the pool breaks and fails every task
    in flight (only a ``WorkerPool`` breaks; it can ``restart``): those are made again
    one at a time on a fresh pool, so the run that killed its worker fails alone, as a
    FAILED record, if it kills a worker again.
    """
    queue, suspects = deque(todo), deque()
    retrying: set[str] = set()
    pending: dict[Future, RunTask] = {}
    broken = False
    while queue or suspects or pending:
        if broken and not pending:
            pool.restart()
            broken = False
        if not broken:
            broken = not _submit(pool, queue, suspects, retrying, pending)
        with interrupts_deferred() as stopping:  # a Ctrl-C lands after the runs that finished are written
            for future in _first_finished(pending, stopping):
                task = pending.pop(future)
                error = future.exception()
                if isinstance(error, BrokenExecutor) and task.run_id not in retrying:
                    broken = True
                    suspects.append(task)
                    continue
                record, series, agents = future.result() if error is None else (_failed_record(task, error), None, None)
                store.write_run(record, series, agents)
                bar.update(failed=record["status"] != "ok")


def _first_finished(pending: dict[Future, RunTask], stopping: list[int]) -> set[Future]:
    """The futures of ``pending`` that are done, once at least one is or a stop signal
    is noted in ``stopping`` (checked every ``STOP_POLL_SECONDS``); none at once when
    nothing is pending (a pool found broken at submission)."""
    while pending:
        finished, _ = wait(pending, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
        if finished or stopping:
            return finished
    return set()


def _submit(
    pool: Executor, queue: deque[RunTask], suspects: deque[RunTask], retrying: set[str], pending: dict[Future, RunTask]
) -> bool:
    """Submit what may run next: a suspect of a worker death alone once nothing else is in
    flight (marked as ``retrying``), else queued tasks up to ``pool.in_flight``; a task
    leaves its deque only once submitted. False when the pool turned out to be broken."""
    if any(task.run_id in retrying for task in pending.values()):
        return True  # a retry runs alone
    try:
        if suspects:
            if not pending:
                pending[pool.submit(run_task, suspects[0])] = suspects[0]
                retrying.add(suspects.popleft().run_id)
            return True
        while queue and len(pending) < pool.in_flight:
            pending[pool.submit(run_task, queue[0])] = queue[0]
            queue.popleft()
    except BrokenExecutor:  # a worker died since the last wait; its pool refuses work
        return False
    return True
