"""The ``ree`` command: run and check scenarios, run and report batch experiments, validate
against history, serve the browser app.

Bad input exits with status 2 and one line on stderr naming the file, key, value and
what was expected; nothing is written before the input has been validated.
"""

import argparse
import sys
from pathlib import Path

from abm.batch.commands import add_batch_commands
from abm.scenario import ScenarioError, load_scenario
from abm.validation.commands import add_validation_commands
from abm.viz.server import DEFAULT_HOST, DEFAULT_PORT

EXIT_BAD_INPUT = 2


def _run(args: argparse.Namespace) -> int:
    from abm.output import write_run
    from abm.run import run_scenario

    scenario = load_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / "runs" / scenario.name
    result = run_scenario(scenario, seed=args.seed)
    for path in write_run(result, out):
        print(path)
    return 0


def _check(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    print(f"{args.scenario}: ok ({scenario.name}, {scenario.horizon_months} months)")
    return 0


def _viz(args: argparse.Namespace) -> int:
    from abm.viz.server import serve

    return serve(args.host, args.port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ree", description="Rare earth supply chain agent-based model.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one scenario and write its series, metrics and figures")
    run.add_argument("scenario", help="scenario TOML file, e.g. experiments/baseline.toml")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--out", help="output folder (default results/runs/<scenario name>/)")
    run.set_defaults(handler=_run)
    check = commands.add_parser("check", help="validate a scenario file without running it")
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
        return args.handler(args)
    except ScenarioError as error:
        print(f"ree: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
