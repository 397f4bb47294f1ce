"""The ``ree validate`` (with ``--holdout``: an out-of-sample prediction over the
calibrated ensemble) and ``ree calibrate`` subcommands.

Both check all their input before running anything and write nothing on bad input.
"""

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from abm.batch.executors import EXECUTORS
from abm.scenario import Scenario, ScenarioError

# The checkout's experiments/ (an editable install), else the one in the working directory.
_CHECKOUT = Path(__file__).resolve().parents[2] / "experiments"
EXPERIMENTS = _CHECKOUT if _CHECKOUT.is_dir() else Path.cwd() / "experiments"
DEFAULT_CALIBRATION = EXPERIMENTS / "crisis_2010_calibration.toml"
DEFAULT_REPLICATIONS = 30
DEFAULT_OUT = Path("results") / "validation"
DEFAULT_ENSEMBLE = EXPERIMENTS / "calibrated"
DEFAULT_MEMBERS = 5
# Out-of-sample holdouts: the year of an episode and the forward scenario that states it.
HOLDOUTS = {2025: EXPERIMENTS / "licensing_2025.toml"}
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


def _searched(names: list[str], base_year: int) -> tuple:
    """Each calibrated setting of ``names`` with the range the calibration searched: its
    factor's in the calibration experiment file, else its documented range in
    abm/data/parameters.csv."""
    from abm.batch.experiment import load_experiment
    from abm.data import load_calibration
    from abm.validation.report import SearchedRange

    factors = {f.name: f for f in load_experiment(DEFAULT_CALIBRATION).factors} if DEFAULT_CALIBRATION.exists() else {}
    documented = {f"{p.section}.{p.name}": p for p in load_calibration(base_year).parameters}
    ranges = []
    for name in names:
        if name in factors:
            f = factors[name]
            low, high = (min(f.levels), max(f.levels)) if f.levels else (f.low, f.high)
            ranges.append(SearchedRange(name, low, high, _shown(DEFAULT_CALIBRATION)))
        else:
            ranges.append(SearchedRange(name, documented[name].low, documented[name].high, "abm/data/parameters.csv"))
    return tuple(ranges)


def _validate(args: argparse.Namespace) -> int:
    return _replay(args) if args.holdout is None else _holdout(args)


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
    ensemble = Path(args.ensemble)
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
    """``ree validate``: replay the 2010-2014 crisis over the ensemble (or one scenario)
    and score it against both halves of the record."""
    import dataclasses

    from abm.batch.executors import open_executor
    from abm.batch.experiment import load_experiment
    from abm.progress import Progress
    from abm.scenario import MarketParameters, load_scenario
    from abm.validation.ensemble import load_ensemble, scenario_member
    from abm.validation.replay import VALIDATION_SEED, submit_replays, replication_seeds
    from abm.validation.report import Provenance, write_validation

    replications = _replications(DEFAULT_REPLICATIONS if args.replications is None else args.replications)
    if args.scenario is None:
        members = load_ensemble(args.ensemble, "--ensemble")
    else:
        names = list(load_experiment(DEFAULT_CALIBRATION).factors) if DEFAULT_CALIBRATION.exists() else []
        members = (scenario_member(Path(args.scenario), [f.name for f in names]),)
    scenarios = {m.name: load_scenario(m.path) for m in members}
    for member in members:
        check_covers_targets(scenarios[member.name], member.path)
    seeds = replication_seeds(replications, VALIDATION_SEED if args.seed is None else args.seed)
    first = scenarios[members[0].name]
    defaults = dataclasses.replace(first, market=MarketParameters())
    out = Path(args.out)
    provenance = Provenance(
        command=_command_line(), ensemble=_shown(Path(args.ensemble if args.scenario is None else args.scenario)), searched=_searched(list(members[0].settings), first.base_year),
        calibration_table=out / "calibration.csv",
    )
    with (
        open_executor(args.executor, args.workers) as executor,
        Progress("ree validate", total=(len(members) + 1) * len(seeds), unit="replays", enabled=not args.quiet) as bar,
    ):
        pending = {m.name: submit_replays(scenarios[m.name], seeds, executor) for m in members}
        pending["defaults"] = submit_replays(defaults, seeds, executor)
        runs = {}
        for name, futures in pending.items():
            runs[name] = []
            for future in futures:
                runs[name].append(future.result())
                bar.update()
    default_runs = runs.pop("defaults")
    name = first.name.removesuffix(f"_{members[0].name}")
    written = write_validation(name, first.start_year, list(members), runs, default_runs, out, provenance)
    for path in written:
        print(path)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from abm.batch.experiment import load_experiment
    from abm.batch.executors import check_executor
    from abm.validation.calibrate import calibrate, check_within_ranges, write_calibration
    from abm.validation.ensemble import write_ensemble

    if args.final_replications is not None:
        raise ScenarioError(
            "--final-replications", "final_replications", args.final_replications,
            "nothing: replaced by `ree validate --replications` (the ensemble is scored on fresh seeds there)",
        )
    experiment = load_experiment(args.experiment)
    check_within_ranges(experiment)
    check_covers_targets(experiment.scenario, experiment.scenario_path)
    check_executor(args.executor, args.workers)
    if args.replications is not None:
        experiment = experiment.with_replications(_replications(args.replications))
    if args.members < 1:
        raise ScenarioError("--members", "members", args.members, "a whole number >= 1")
    out = Path(args.out)
    table = calibrate(
        experiment, Path(args.store) if args.store else out / "calibration_runs", executor=args.executor,
        workers=args.workers, resume=args.resume, progress=not args.quiet,
    )
    written = [write_calibration(table, out / "calibration.csv")]
    searched = [f.name for f in experiment.factors]
    whole = table[np.isfinite(table["loss"])]
    written += write_ensemble(
        whole, searched, experiment.scenario_path, Path(args.ensemble), args.members, _shown(written[0]),
    )
    for path in written:
        print(path)
    best = table.iloc[0]
    print("best: " + ", ".join(f"{name} = {best[name]:.3g}" for name in searched))
    print(f"loss {best['loss']:.4f} on {experiment.replications} replications, {int(best['within'])} calibration targets hold")
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The output folder, where runs execute, and progress."""
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT}/)")
    parser.add_argument("--executor", choices=EXECUTORS, default="processes", help="where runs execute")
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress")


def add_validation_commands(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser(
        "validate", help="replay the 2010-2014 quota crisis over the calibrated ensemble and score it against the "
        "record; with --holdout 2025, predict the 2025 export-licence episode over the ensemble"
    )
    validate.add_argument(
        "scenario", nargs="?", default=None,
        help="validate this historical scenario alone instead of the ensemble (e.g. experiments/crisis_2010.toml)",
    )
    validate.add_argument(
        "--ensemble", default=str(DEFAULT_ENSEMBLE),
        help=f"folder of calibrated members written by ree calibrate (default experiments/{DEFAULT_ENSEMBLE.name}/)",
    )
    _add_common(validate)
    validate.add_argument(
        "--replications", type=int, default=None,
        help=f"replications of each member, the same seeds in each (default {DEFAULT_REPLICATIONS}; "
        f"with --holdout, {HOLDOUT_REPLICATIONS})",
    )
    validate.add_argument(
        "--holdout", type=int, default=None, metavar="YEAR",
        help=f"predict a holdout episode instead ({', '.join(map(str, HOLDOUTS))}: "
        f"experiments/{HOLDOUTS[2025].name}); writes holdout_YEAR.md, its figures and series into --out",
    )
    validate.add_argument("--seed", type=int, default=None, help="validation seed (default: the fixed one)")
    validate.set_defaults(handler=_validate)
    calibrate = commands.add_parser(
        "calibrate", help="search uncertain parameters, within their ranges, against the calibration half of the record"
    )
    calibrate.add_argument(
        "experiment", nargs="?", default=str(DEFAULT_CALIBRATION),
        help=f"a sampled-design experiment over the historical scenario (default experiments/{DEFAULT_CALIBRATION.name})",
    )
    _add_common(calibrate)
    calibrate.add_argument("--replications", type=int, help="override the file's replications")
    calibrate.add_argument(
        "--members", "--finalists", dest="members", type=int, default=DEFAULT_MEMBERS,
        help=f"best candidates written as the ensemble (default {DEFAULT_MEMBERS})",
    )
    calibrate.add_argument(
        "--ensemble", default=str(DEFAULT_ENSEMBLE),
        help=f"folder the members are written to (default experiments/{DEFAULT_ENSEMBLE.name}/)",
    )
    calibrate.add_argument("--store", help="batch store of the calibration runs (default <out>/calibration_runs/)")
    calibrate.add_argument("--resume", action="store_true", help="continue an interrupted calibration (reruns always do)")
    calibrate.add_argument("--final-replications", type=int, default=None, help=argparse.SUPPRESS)
    calibrate.set_defaults(handler=_calibrate)
