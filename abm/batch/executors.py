"""Where runs execute: in this process, on all local cores, or on a Dask cluster.

All three are ``concurrent.futures`` executors, so the engine has one loop for all of
them. Worker processes are started with an explicit ``spawn`` context (never by changing
the global start method, as ``mesa.batch_run`` does), so results never depend on what
a forked parent had in memory.
"""

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from abm.scenario import ScenarioError

EXECUTORS = ("serial", "processes", "dask")


class SerialExecutor(Executor):
    """Runs each task at submission, in this process (for debugging and small batches)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # the engine records it as a failed run
            future.set_exception(error)
        return future


@contextmanager
def open_executor(kind: str, workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """An executor of ``kind``; bad choices and unreachable schedulers are bad input."""
    if kind not in EXECUTORS:
        raise ScenarioError("--executor", "executor", kind, f"one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ScenarioError("--workers", "workers", workers, "a whole number >= 1")
    count = workers or os.cpu_count() or 1
    if kind == "serial":
        yield SerialExecutor()
    elif kind == "processes":
        with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn")) as executor:
            yield executor
    else:
        yield from _dask_executor(count, scheduler)


def _dask_executor(workers: int, scheduler: str | None) -> Iterator[Executor]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ScenarioError(
            "--executor", "executor", "dask", "the dask extra installed (pip install 'rare-earth-abm[dask]')"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise ScenarioError("--scheduler", "scheduler", scheduler, f"a reachable Dask scheduler ({error})") from None
        with client:
            yield client.get_executor()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client.get_executor()
