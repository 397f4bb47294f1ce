"""The ``ree batch`` and ``ree report`` subcommands.

``ree batch`` exits 0 when every run succeeded, 1 when some failed (after writing the
report), 2 on bad input or a store it must not or cannot write, and 130 (Ctrl-C) or
143 (SIGTERM) when stopped, with one line saying how many runs are saved.
"""

import argparse
import signal
import sys
from pathlib import Path

from abm.batch.executors import EXECUTORS, Terminated

EXIT_FAILED_RUNS = 1


def _out(args: argparse.Namespace, experiment) -> Path:
    return Path(args.out) if args.out else Path("results") / experiment.name


def _write_report(folder: Path, experiment) -> list[Path]:
    """The report of the store in ``folder``; a folder it cannot write is one line, not a traceback."""
    from abm.batch.report import write_report
    from abm.batch.store import store_error

    if not (folder / "series.parquet").exists():
        print(f"ree: {folder}: no series.parquet (a fresh clone keeps only the metrics); "
              "figures of the series are skipped (rerun the batch to make them)", file=sys.stderr)
    try:
        return write_report(folder, experiment)
    except OSError as error:
        raise store_error(folder, error) from None


def _interrupted(stop: KeyboardInterrupt, experiment, out: Path) -> int:
    """Say in one line what an interrupted batch saved; the exit status of its signal."""
    from abm.batch.runner import saved_runs

    saved, total = saved_runs(experiment, out)
    print(f"ree: interrupted: {saved} of {total} runs saved in {out}; rerun the same command (or add --resume) to finish",
          file=sys.stderr)
    return 128 + int(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


def _batch(args: argparse.Namespace) -> int:
    from abm.batch.executors import sigterm_interrupts
    from abm.batch.experiment import load_experiment
    from abm.batch.runner import run_batch

    experiment = load_experiment(args.experiment, use_ensemble=not args.no_ensemble)
    if args.replications is not None:
        experiment = experiment.with_replications(args.replications)
    out = _out(args, experiment)
    try:
        with sigterm_interrupts():
            store = run_batch(
                experiment, out, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                resume=args.resume, progress=not args.quiet, force=args.force,
            )
            written = [] if args.no_report else _write_report(store.folder, experiment)
    except KeyboardInterrupt as stop:
        return _interrupted(stop, experiment, out)
    for path in written:
        print(path)
    failed = store.manifest()["failed"]
    if failed:
        print(f"ree: {failed} run(s) failed; see {store.folder / 'status.log'} (rerun to retry them)", file=sys.stderr)
        return EXIT_FAILED_RUNS
    return 0


def _report(args: argparse.Namespace) -> int:
    from abm.batch.experiment import load_experiment
    from abm.batch.store import Store
    from abm.scenario import ScenarioError

    store = Store(Path(args.store))
    if not store.exists() or not (store.folder / "metrics.parquet").exists():
        raise ScenarioError(store.folder, "store", str(store.folder), "a results folder written by ree batch")
    experiment_file = Path(store.manifest().get("experiment_file", ""))
    # The ensemble's members are read from the runs (factor.ensemble_member): its folder may
    # have been recalibrated since, or the batch run with --no-ensemble.
    experiment = load_experiment(experiment_file, use_ensemble=False) if experiment_file.is_file() else None
    for path in _write_report(store.folder, experiment):
        print(path)
    return 0


def add_batch_commands(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser("batch", help="run an experiment (sweep x policies x replications) and report it")
    batch.add_argument("experiment", help="experiment TOML file, e.g. experiments/diversification.toml")
    batch.add_argument("--out", help="results folder (default results/<experiment name>/)")
    batch.add_argument("--executor", choices=EXECUTORS, default="processes", help="where runs execute (default processes)")
    batch.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    batch.add_argument("--scheduler", help="address of a running Dask scheduler (with --executor dask)")
    batch.add_argument("--replications", type=int, help="override the file's replications (run any experiment small)")
    batch.add_argument(
        "--no-ensemble", action="store_true",
        help="run on the scenario's own parameters, as if the file named no ensemble",
    )
    batch.add_argument("--resume", action="store_true", help="continue an interrupted batch (reruns always skip finished runs)")
    batch.add_argument(
        "--force", action="store_true",
        help="change the replications of an existing store (its tables then hold exactly this plan's runs)",
    )
    batch.add_argument(
        "--no-report", action="store_true",
        help="store the runs only, no report (make it later with ree report STORE)",
    )
    batch.add_argument("--quiet", action="store_true", help="no progress")
    batch.set_defaults(handler=_batch)
    report = commands.add_parser("report", help="write summary tables, figures and report.md for a results folder")
    report.add_argument("store", help="a folder written by ree batch, e.g. results/diversification")
    report.set_defaults(handler=_report)
