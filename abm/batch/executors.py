"""Where runs execute: in this process, on local worker processes, or on a Dask cluster.

All three are ``concurrent.futures`` executors, so the engine has one loop for all of
them; each also says how many tasks are worth keeping submitted (``in_flight``: two per
worker, one when runs execute at submission), so the engine never gets more than a
small window ahead of what it has written.
Worker processes are started with an explicit ``spawn`` context (never by changing
the global start method, as ``mesa.batch_run`` does), so results never depend on what
a forked parent had in memory. They ignore SIGINT (a Ctrl-C on a terminal reaches the
whole process group): the parent decides, and ends them at once when it stops.

In the parent, Ctrl-C and SIGTERM are held while it talks to a pool
(``interrupts_deferred``): raised inside ``concurrent.futures``' own code, they can leave
one of its locks taken, and the command then never ends.
"""

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from abm.scenario import ScenarioError

EXECUTORS = ("serial", "processes", "dask")
STOP_SECONDS = 1.0  # how long ended workers get to go before they are killed


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that one path stops a command."""


@contextmanager
def _handling(signum: int, handler: Any) -> Iterator[None]:
    """Handle ``signum`` with ``handler`` while inside, then restore the previous handler
    (ignored signals stay ignored in processes started meanwhile). Outside the main
    thread it does nothing: signals are not that thread's to handle."""
    try:
        previous = signal.signal(signum, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextmanager
def interrupts_deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM while inside, then deliver the first noted to the handler it
    had (a second stop request asks for the same stop); yields the list of the signals
    noted so far (so a wait can end early).

    Why: a Ctrl-C raised in ``concurrent.futures.wait`` after it took a future's lock and
    before its ``with`` block began leaves that lock taken for ever. The pool's manager
    thread then blocks when it fails the future, and the interpreter, which joins that
    thread at exit, never ends (CI hung so, reproduced in tests/test_batch_stops.py).
    Raised here instead, the exception leaves from this project's code, holding nothing.
    Outside the main thread, for an ignored signal (it stays ignored, in processes
    started inside too) or for a handler not set from Python, nothing is held."""
    noted: list[int] = []

    def note(signum: int, frame: Any) -> None:
        noted.append(signum)

    try:
        with ExitStack() as held:
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) not in (None, signal.SIG_IGN):
                    held.enter_context(_handling(signum, note))
            yield noted
    finally:  # the handlers are back: the signal reaches the one it had
        if noted:
            signal.raise_signal(noted[0])


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def sigterm_interrupts() -> AbstractContextManager[None]:
    """While inside, SIGTERM raises ``Terminated`` in the main thread (as SIGINT raises
    KeyboardInterrupt), so ``finally`` blocks and executors end cleanly."""
    return _handling(signal.SIGTERM, _raise_terminated)


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C is for the parent, which ends its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SerialExecutor(Executor):
    """Runs each task at submission, in this process (for debugging and small batches).
    With one task in flight the engine submits a task only after writing the one before."""

    in_flight = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # the engine records it as a failed run; Ctrl-C stops
            future.set_exception(error)
        return future


class WorkerPool(Executor):
    """Local spawn worker processes that can be replaced after one died (``restart``)
    and ended at once when the command stops (``stop``)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.in_flight = 2 * workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupts
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with interrupts_deferred():
            return self._pool.submit(fn, *args, **kwargs)

    def restart(self) -> None:
        """A fresh set of workers, after the old pool broke (a worker died)."""
        with interrupts_deferred():
            self.stop()
            self._pool = self._new_pool()

    def stop(self) -> None:
        """End every worker now (SIGTERM, then SIGKILL after ``STOP_SECONDS``); pending
        tasks are cancelled."""
        # ProcessPoolExecutor has no public way to end busy workers before Python 3.14
        # (terminate_workers), so this reaches for its process table.
        processes = list((self._pool._processes or {}).values())
        results = self._pool._result_queue
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        # A worker ended while sending a result leaves part of a message in the result
        # pipe; the pool's manager thread then waits in recv for the rest for ever, and
        # the interpreter joins that thread at exit, so the command never ends. With every
        # worker gone, closing this process's copy of the pipe's write end turns that wait
        # into end-of-file, which the pool handles as a broken pool and cleans up.
        if results is not None:
            results._writer.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


class DaskExecutor(Executor):
    """A Dask client's executor, two tasks in flight per worker thread of the cluster."""

    def __init__(self, client: Any) -> None:
        self._executor = client.get_executor()
        self.in_flight = 2 * max(sum(client.nthreads().values()), 1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with interrupts_deferred():
            return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)


def check_executor(kind: str, workers: int | None = None) -> None:
    """Refuse an unknown executor or a worker count below one (before anything is written)."""
    if kind not in EXECUTORS:
        raise ScenarioError("--executor", "executor", kind, f"one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ScenarioError("--workers", "workers", workers, "a whole number >= 1")


@contextmanager
def open_executor(kind: str, workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """An executor of ``kind`` (with an ``in_flight`` attribute); bad choices and unreachable
    schedulers are bad input. Leaving on an exception (Ctrl-C, SIGTERM) ends local
    workers at once instead of waiting for their runs."""
    check_executor(kind, workers)
    count = workers or os.cpu_count() or 1
    if kind == "serial":
        yield SerialExecutor()
    elif kind == "processes":
        pool = WorkerPool(count)
        try:
            yield pool
        except BaseException:
            pool.stop()
            raise
        pool.shutdown()
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
            yield from _cancelled_on_exit(DaskExecutor(client))
        return
    with _handling(signal.SIGINT, signal.SIG_IGN):  # its processes inherit it: Ctrl-C is for this one
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield from _cancelled_on_exit(DaskExecutor(client))


def _cancelled_on_exit(executor: DaskExecutor) -> Iterator[Executor]:
    """Yield ``executor``; on an exception, cancel its tasks instead of waiting for them."""
    try:
        yield executor
    except BaseException:
        executor.shutdown(cancel_futures=True)
        raise
    executor.shutdown()
