"""The ``ree`` command: run and check scenarios, run and report batch experiments, validate
against history, serve the browser app.

Bad input exits with status 2 and one line on stderr naming the file (or flag), key,
value and what was expected; nothing is written before the input has been validated.
Flags shared by several commands (``--seed``, ``--workers``, ``--scheduler``) are checked
here once, after parsing and before any command runs; ``ree viz`` checks its ``--host``
and ``--port`` by binding them (abm/viz/server.py).
"""

import argparse
import os
import re
import sys
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from abm.batch.commands import add_batch_commands
from abm.scenario import ScenarioError, load_scenario, read_toml
from abm.validation.commands import add_validation_commands
from abm.viz.server import DEFAULT_HOST, DEFAULT_PORT

EXIT_BAD_INPUT = 2
# Worker processes beyond this oversubscribe any machine (and each costs memory).
MAX_WORKERS = max(64, 4 * (os.cpu_count() or 1))
SCHEDULER_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other bad input:
    ``ree: --seed: invalid int value: 'x'`` (subcommand parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"ree: {re.sub(r'^argument ([^:]+): ', r'\1: ', message)}\n")


def _run(args: argparse.Namespace) -> int:
    from abm.output import write_run
    from abm.run import run_scenario

    scenario = load_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / "runs" / scenario.name
    blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ScenarioError(
            "--out" if args.out else args.scenario, "out", str(out), f"a folder to write into ({blocked} is a file)"
        )
    result = run_scenario(scenario, seed=args.seed, products=True)
    for path in write_run(result, out):
        print(path)
    return 0


def _check(args: argparse.Namespace) -> int:
    """Validate a scenario file, or an experiment file (one that names its ``scenario``)."""
    if "scenario" in read_toml(Path(args.scenario), args.scenario, "file"):
        from abm.batch.experiment import load_experiment

        experiment = load_experiment(args.scenario)
        print(f"{args.scenario}: ok (experiment {experiment.name}, {experiment.planned_runs()} runs at most)")
        return 0
    scenario = load_scenario(args.scenario)
    print(f"{args.scenario}: ok ({scenario.name}, {scenario.horizon_months} months)")
    return 0


def _viz(args: argparse.Namespace) -> int:
    from abm.viz.server import serve

    return serve(args.host, args.port)


def _check_scheduler(address: str, executor: str | None) -> None:
    """A Dask scheduler address ``[protocol://]host:port``, given with ``--executor dask``."""
    if executor != "dask":
        raise ScenarioError("--scheduler", "scheduler", address, "no --scheduler except with --executor dask")
    expected = f"a scheduler address like tcp://host:8786 (protocols {', '.join(SCHEDULER_PROTOCOLS)})"
    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        port = parts.port
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ScenarioError("--scheduler", "scheduler", address, expected) from None
    if parts.scheme not in SCHEDULER_PROTOCOLS or not parts.hostname or port is None or port < 1 or parts.path or parts.query:
        raise ScenarioError("--scheduler", "scheduler", address, expected)


def _check_flags(args: argparse.Namespace) -> None:
    """The flags several commands share, before anything runs or is written."""
    seed = getattr(args, "seed", None)
    if seed is not None and seed < 0:
        raise ScenarioError("--seed", "seed", seed, "a whole number >= 0")
    workers = getattr(args, "workers", None)
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ScenarioError("--workers", "workers", workers, f"a whole number in [1, {MAX_WORKERS}]")
    if getattr(args, "scheduler", None) is not None:
        _check_scheduler(args.scheduler, getattr(args, "executor", None))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ree", description="Rare earth supply chain agent-based model.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run one scenario and write its series, import dependency, metrics and figures",
        description="Run one scenario and write into the output folder: series.parquet and series.csv "
        "(per element), product_series.parquet (per product: price, production, shortfall, trade flows, "
        "origin shares), import_dependency.csv (each region's supply by origin per stage), metrics.json, "
        "prices.png, supply_by_origin.png and shortfall.png.",
    )
    run.add_argument("scenario", help="scenario TOML file, e.g. experiments/baseline.toml")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--out", help="output folder (default results/runs/<scenario name>/)")
    run.set_defaults(handler=_run)
    check = commands.add_parser("check", help="validate a scenario or experiment file without running it")
    check.add_argument("scenario")
    check.set_defaults(handler=_check)
    viz = commands.add_parser("viz", help="serve the browser app (charts and controls) on http://HOST:PORT/")
    viz.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}, this machine only)")
    viz.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    viz.set_defaults(handler=_viz)
    add_batch_commands(commands)
    add_validation_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check_flags(args)
        return args.handler(args)
    except ScenarioError as error:
        problem = error
    except OSError as error:  # last resort: a path that cannot be read or written, as one line
        problem = ScenarioError(
            error.filename if error.filename is not None else "ree", "(file system)", error.strerror or str(error),
            "a path this user can read and write",
        )
    print(f"ree: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
