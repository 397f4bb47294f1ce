"""Batch experiments: sweeps x policies x replications with common random numbers,
run on any ``concurrent.futures`` executor, stored resumably, summarised with
confidence intervals.

Names are imported on first use (as in ``abm``), so the CLI's batch commands load the
model only when a batch runs."""

from importlib import import_module
from typing import Any

# Each public name and the module that defines it.
_PUBLIC = {
    "Experiment": "abm.batch.experiment",
    "Factor": "abm.batch.experiment",
    "experiment_from_dict": "abm.batch.experiment",
    "load_experiment": "abm.batch.experiment",
    "RunTask": "abm.batch.plan",
    "plan_runs": "abm.batch.plan",
    "run_batch": "abm.batch.runner",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'abm.batch' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
