"""Batch experiments: sweeps x policies x replications with common random numbers,
run on any ``concurrent.futures`` executor, stored resumably, summarised with
confidence intervals."""

from abm.batch.experiment import Experiment, load_experiment
from abm.batch.plan import RunTask, plan_runs
from abm.batch.runner import run_batch

__all__ = ["Experiment", "RunTask", "load_experiment", "plan_runs", "run_batch"]
