"""The ``ree validate`` (with ``--holdout``: an out-of-sample prediction over the
calibrated ensemble) and ``ree calibrate`` subcommands.

Both check all their input before running anything and write nothing on bad input.
"""

import argparse
import shlex
import sys
from pathlib import Path

from abm.batch.executors import EXECUTORS
from abm.scenario import Scenario, ScenarioError

# The checkout's experiments/ (an editable install), else the one in the working directory.
_CHECKOUT = Path(__file__).resolve().parents[2] / "experiments"
EXPERIMENTS = _CHECKOUT if _CHECKOUT.is_dir() else Path.cwd() / "experiments"
DEFAULT_SCENARIO = EXPERIMENTS / "crisis_2010.toml"
DEFAULT_CALIBRATION = EXPERIMENTS / "crisis_2010_calibration.toml"
DEFAULT_REPLICATIONS = 30
DEFAULT_OUT = Path("results") / "validation"
# Out-of-sample holdouts: the year of an episode and the forward scenario that states it.
HOLDOUTS = {2025: EXPERIMENTS / "licensing_2025.toml"}
DEFAULT_ENSEMBLE = EXPERIMENTS / "calibrated"
HOLDOUT_REPLICATIONS = 10  # per member


def _command_line() -> str:
    return " ".join(["ree", *(shlex.quote(a) for a in sys.argv[1:])])


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def check_covers_targets(scenario: Scenario, source: str | Path) -> None:
    """The scenario must start in its base year and run past the last target month."""
    from abm.data import month_index
    from abm.validation.history import load_targets

    if scenario.start_year != scenario.base_year:
        raise ScenarioError(source, "start_year", scenario.start_year, f"the base year {scenario.base_year}")
    first = min(month_index(t.start, scenario.start_year) for t in load_targets())
    if first < 0:
        raise ScenarioError(
            source, "start_year", scenario.start_year, "a start no later than the first validation target (2009)"
        )
    last = max(month_index(t.end, scenario.start_year) for t in load_targets())
    if scenario.horizon_months <= last:
        raise ScenarioError(
            source, "horizon_months", scenario.horizon_months, f"more than {last} months (the last validation target)"
        )


def _replications(value: int) -> int:
    if value < 1:
        raise ScenarioError("--replications", "replications", value, "a whole number >= 1")
    return value


def _validate(args: argparse.Namespace) -> int:
    if args.holdout is not None:
        return _holdout(args)
    if args.ensemble is not None:
        raise ScenarioError("--ensemble", "ensemble", args.ensemble, "no --ensemble except with --holdout")
    return _replay(args)


def _holdout(args: argparse.Namespace) -> int:
    """``ree validate --holdout YEAR``: the holdout scenario over the calibrated ensemble."""
    from abm.batch.executors import open_executor
    from abm.progress import Progress
    from abm.scenario import load_scenario
    from abm.validation.ensemble import load_ensemble
    from abm.validation.holdout import run_holdout, scenario_licences
    from abm.validation.holdout_report import Holdout, write_holdout
    from abm.validation.replay import VALIDATION_SEED, replication_seeds

    if args.holdout not in HOLDOUTS:
        years = ", ".join(str(year) for year in HOLDOUTS)
        raise ScenarioError("--holdout", "holdout", args.holdout, f"a year with a holdout scenario ({years})")
    if args.scenario is not None:
        raise ScenarioError(
            "--holdout", "scenario", args.scenario,
            f"no scenario file with --holdout (the {args.holdout} holdout runs {_shown(HOLDOUTS[args.holdout])})",
        )
    path = HOLDOUTS[args.holdout]
    scenario = load_scenario(path)
    licences = scenario_licences(scenario, str(path))
    ensemble = Path(args.ensemble) if args.ensemble is not None else DEFAULT_ENSEMBLE
    members = load_ensemble(ensemble, "--ensemble")
    replications = _replications(HOLDOUT_REPLICATIONS if args.replications is None else args.replications)
    seeds = replication_seeds(replications, VALIDATION_SEED if args.seed is None else args.seed)
    with (
        open_executor(args.executor, args.workers) as executor,
        Progress("ree validate --holdout", total=len(members) * len(seeds), enabled=not args.quiet) as progress,
    ):
        runs = run_holdout(scenario, members, seeds, executor, licences, progress)
    holdout = Holdout(
        year=args.holdout, scenario=scenario, scenario_path=_shown(path), licences=licences, members=members,
        ensemble_path=_shown(ensemble), seeds=tuple(seeds), command=_command_line(),
    )
    for written in write_holdout(holdout, runs, Path(args.out)):
        print(written)
    return 0


def _replay(args: argparse.Namespace) -> int:
    """``ree validate``: replay the 2010-2014 crisis and score it against the targets."""
    import dataclasses

    from abm.batch.executors import open_executor
    from abm.progress import Progress
    from abm.scenario import MarketParameters, load_scenario
    from abm.validation.history import load_observed_prices, load_targets
    from abm.validation.replay import VALIDATION_SEED, replay_many, replication_seeds
    from abm.batch.experiment import load_experiment
    from abm.validation.report import Provenance, write_validation
    from abm.validation.scoring import evaluate_targets

    scenario_path = args.scenario if args.scenario is not None else str(DEFAULT_SCENARIO)
    scenario = load_scenario(scenario_path)
    check_covers_targets(scenario, scenario_path)
    replications = _replications(DEFAULT_REPLICATIONS if args.replications is None else args.replications)
    # The settings the calibration searches, as its experiment file names them.
    searched = tuple(f.name for f in load_experiment(DEFAULT_CALIBRATION).factors) if DEFAULT_CALIBRATION.exists() else ()
    seeds = replication_seeds(replications, VALIDATION_SEED if args.seed is None else args.seed)
    defaults = dataclasses.replace(scenario, market=MarketParameters())
    with (
        open_executor(args.executor, args.workers) as executor,
        Progress("ree validate", total=2 * len(seeds), unit="replays", enabled=not args.quiet) as progress,
    ):
        runs = replay_many(scenario, seeds, executor, progress)
        default_runs = replay_many(defaults, seeds, executor, progress)
    targets = load_targets()
    results = evaluate_targets(targets, runs, scenario.start_year)
    uncalibrated = evaluate_targets(targets, default_runs, scenario.start_year)
    out = Path(args.out)
    provenance = Provenance(
        scenario_path=_shown(Path(scenario_path)), command=_command_line(), searched=searched,
        calibration_table=out / "calibration.csv",
    )
    for path in write_validation(scenario, results, runs, load_observed_prices(), out, provenance, uncalibrated):
        print(path)
    hits = sum(r.within for r in results)
    print(f"{hits} of {len(results)} targets within the simulated 90 % band")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from abm.batch.executors import open_executor
    from abm.batch.experiment import load_experiment
    from abm.validation.calibrate import calibrate, check_within_ranges, write_calibration

    experiment = load_experiment(args.experiment)
    check_within_ranges(experiment)
    check_covers_targets(experiment.scenario, experiment.scenario_path)
    if args.replications is not None:
        experiment = experiment.with_replications(_replications(args.replications))
    _replications(args.final_replications)
    if args.finalists < 1:
        raise ScenarioError("--finalists", "finalists", args.finalists, "a whole number >= 1")
    with open_executor(args.executor, args.workers) as executor:
        table = calibrate(experiment, executor, args.finalists, args.final_replications, progress=not args.quiet)
    path = write_calibration(table, Path(args.out) / "calibration.csv")
    print(path)
    best = table.iloc[0]
    scores = ("loss", "within", "final_loss", "final_within")
    print("best: " + ", ".join(f"{name} = {best[name]:.3g}" for name in table.columns if name not in scores))
    print(f"loss {best['final_loss']:.4f} on {args.final_replications} replications, {int(best['final_within'])} targets within")
    return 0


def _add_common(parser: argparse.ArgumentParser, name: str, default: Path, what: str) -> None:
    """The input file (optional, with its default), the output folder and where runs execute."""
    parser.add_argument(name, nargs="?", default=str(default), help=f"{what} (default experiments/{default.name})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT}/)")
    parser.add_argument("--executor", choices=EXECUTORS, default="processes", help="where runs execute")
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")


def add_validation_commands(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser(
        "validate", help="replay the 2010-2014 quota crisis and compare simulated with observed prices; "
        "with --holdout 2025, predict the 2025 export-licence episode over the calibrated ensemble",
    )
    _add_common(validate, "scenario", DEFAULT_SCENARIO, "historical scenario")
    validate.set_defaults(scenario=None)  # resolved by the command: --holdout refuses a scenario file
    validate.add_argument(
        "--replications", type=int, default=None,
        help=f"replications (default {DEFAULT_REPLICATIONS}; with --holdout, {HOLDOUT_REPLICATIONS} per member)",
    )
    validate.add_argument(
        "--holdout", type=int, default=None, metavar="YEAR",
        help=f"predict a holdout episode instead ({', '.join(map(str, HOLDOUTS))}: "
        f"experiments/{HOLDOUTS[2025].name}); writes holdout_YEAR.md, its figures and series into --out",
    )
    validate.add_argument(
        "--ensemble", default=None, metavar="FOLDER",
        help="with --holdout: the calibrated ensemble's member files (default experiments/calibrated/, "
        "written by `ree calibrate`)",
    )
    validate.add_argument("--seed", type=int, default=None, help="validation seed (default: the fixed one)")
    validate.add_argument("--quiet", action="store_true", help="no progress")
    validate.set_defaults(handler=_validate)
    calibrate = commands.add_parser(
        "calibrate", help="search uncertain parameters, within their ranges, against the validation targets"
    )
    _add_common(calibrate, "experiment", DEFAULT_CALIBRATION, "a sampled-design experiment over the historical scenario")
    calibrate.add_argument("--replications", type=int, help="override the file's replications")
    calibrate.add_argument("--finalists", type=int, default=5, help="best candidates scored again (default 5)")
    calibrate.add_argument(
        "--final-replications", type=int, default=DEFAULT_REPLICATIONS,
        help=f"replications of that second stage (default {DEFAULT_REPLICATIONS})",
    )
    calibrate.add_argument("--quiet", action="store_true", help="no progress line")
    calibrate.set_defaults(handler=_calibrate)
