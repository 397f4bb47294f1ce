"""Batch experiments: sweeps x policies x replications with common random numbers,
run on any ``concurrent.futures`` executor, stored resumably, summarised with
confidence intervals.

Names are imported on first use (as in ``abm``), so the CLI's batch commands load the
model only when a batch runs."""

from abm.lazy import lazy_namespace

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
__getattr__, __dir__ = lazy_namespace("abm.batch", globals(), _PUBLIC)
