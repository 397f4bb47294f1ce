"""The ``ree batch`` and ``ree report`` subcommands."""

import argparse
from pathlib import Path

from abm.batch.executors import EXECUTORS


def _out(args: argparse.Namespace, experiment) -> Path:
    return Path(args.out) if args.out else Path("results") / experiment.name


def _batch(args: argparse.Namespace) -> int:
    from abm.batch.experiment import load_experiment
    from abm.batch.report import write_report
    from abm.batch.runner import run_batch

    experiment = load_experiment(args.experiment)
    if args.replications is not None:
        experiment = experiment.with_replications(args.replications)
    out = _out(args, experiment)
    store = run_batch(
        experiment, out, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
        resume=args.resume, progress=not args.quiet,
    )
    for path in write_report(store.folder, experiment):
        print(path)
    failed = len(store.failures())
    if failed:
        print(f"ree: {failed} run(s) failed; see {store.folder / 'status.log'} (rerun to retry them)")
    return 0


def _report(args: argparse.Namespace) -> int:
    import json

    from abm.batch.experiment import load_experiment
    from abm.batch.report import write_report
    from abm.scenario import ScenarioError

    store = Path(args.store)
    if not (store / "manifest.json").exists() or not (store / "metrics.parquet").exists():
        raise ScenarioError(store, "store", str(store), "a results folder written by ree batch")
    manifest = json.loads((store / "manifest.json").read_text())
    experiment_file = Path(manifest.get("experiment_file", ""))
    experiment = load_experiment(experiment_file) if experiment_file.is_file() else None
    for path in write_report(store, experiment):
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
    batch.add_argument("--resume", action="store_true", help="continue an interrupted batch (reruns always skip finished runs)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_batch)
    report = commands.add_parser("report", help="write summary tables, figures and report.md for a results folder")
    report.add_argument("store", help="a folder written by ree batch, e.g. results/diversification")
    report.set_defaults(handler=_report)
