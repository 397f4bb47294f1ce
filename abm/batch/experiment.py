"""Experiment files: a base scenario, factors to sweep, policies to compare, replications.

An experiment is data a non-programmer can read (TOML), refused with the same one-line
error as a scenario when a key, value or combination is wrong:

    name = "quota_sweep"
    scenario = "quota_shock.toml"        # relative to this file
    design = "full_factorial"            # or latin_hypercube, sobol, morris
    replications = 10
    seed = 20261128
    record_every = 3                     # months between recorded steps
    ensemble = "calibrated"              # optional: a folder of member files (relative to this file)
    [factors]                            # model keywords or scenario keys
    quota_cut = [0.0, 0.4, 0.8]          # lists for a full factorial ...
    "market.short_run_elasticity" = {low = -0.2, high = -0.1}   # ... ranges for sampled designs
    [policies]                           # lever settings to compare; "none" is added
    stockpile = {stockpile_months = 3.0}

With an ``ensemble`` (the member files ``ree calibrate`` writes), every design point is
run once per member: the member's ``[market]`` settings, then the point's factors, then
the policy's settings (later ones win, so a factor sweeping a setting a member states
overrides the member's value).
"""

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abm.model import RECORDED
from abm.scenario import Scenario, ScenarioError, load_scenario, read_toml, setting_type
from abm.schema import NOT_SHOWN, plain_name
from abm.validation.ensemble import Member, load_ensemble

DESIGNS = ("full_factorial", "latin_hypercube", "sobol", "morris")
# The most runs one experiment may plan (design points x members x policies x replications),
# checked before any sampling: larger designs would hang in SALib or fill the disk.
MAX_RUNS = 1_000_000
NO_POLICY = "none"
# The factor naming a run's ensemble member (``factor.ensemble_member`` in the store); it
# is recorded with the design point but never applied as a setting.
ENSEMBLE_FACTOR = "ensemble_member"
DEFAULT_SERIES = ("price", "shortfall", "demand", "strategic_stock", "tension", "policy_cost")


@dataclass(frozen=True)
class Factor:
    """A swept input: ``levels`` for a full factorial, or a ``low``-``high`` range to sample."""

    name: str
    levels: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False


@dataclass(frozen=True)
class Experiment:
    name: str
    source: Path
    scenario: Scenario
    scenario_path: Path
    design: str = "full_factorial"
    samples: int = 0
    factors: tuple[Factor, ...] = ()
    policies: dict[str, dict[str, Any]] = field(default_factory=lambda: {NO_POLICY: {}})
    replications: int = 1
    seed: int = 0
    record_every: int = 1
    series_variables: tuple[str, ...] = DEFAULT_SERIES
    description: str = ""
    record_agents: bool = False  # also store every agent's series (agents.parquet)
    # Set by `ree calibrate`, not by experiment files: every design point meets the same
    # seed in each replication (common random numbers), and each run also records the
    # simulated value of every historical target of this half (abm/data/history/).
    shared_seeds: bool = False
    targets: str = ""
    ensemble: tuple[Member, ...] = ()  # calibrated members each design point runs with (none: the scenario's own)

    def planned_runs(self) -> int:
        """The most runs the plan holds: design points x members (1 without an ensemble)
        x policies x replications (a sampled design that repeats a row runs it once)."""
        points = design_points(self.design, self.samples, self.factors)
        return points * max(len(self.ensemble), 1) * len(self.policies) * self.replications

    def with_replications(self, replications: int, source: str | Path = "--replications") -> "Experiment":
        """A copy with another number of replications, within ``MAX_RUNS`` runs."""
        _expect(_is_int(replications) and replications >= 1, source, "replications", replications, "a whole number >= 1")
        points = design_points(self.design, self.samples, self.factors)
        _check_run_count(points, len(self.ensemble), len(self.policies), replications, source, "replications", replications)
        return Experiment(**{**self.__dict__, "replications": replications})


_KEYS = {
    "name", "description", "scenario", "design", "samples", "factors", "policies",
    "replications", "seed", "record_every", "series", "record_agents", "ensemble",
}


def _expect(condition: bool, source: Path, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ScenarioError(source, key, value, expected)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def design_points(design: str, samples: int, factors: tuple[Factor, ...]) -> int:
    """How many rows the design has, without sampling it: the product of the levels
    (full factorial), N (Latin hypercube), N (D + 2) (Sobol without second order) or
    N (D + 1) (Morris), for N samples over D factors."""
    if design == "full_factorial":
        return math.prod(len(f.levels) for f in factors)
    per_sample = {"latin_hypercube": 1, "sobol": len(factors) + 2, "morris": len(factors) + 1}[design]
    return samples * per_sample


def _check_run_count(
    points: int, members: int, policies: int, replications: int, source: str | Path, key: str, value: Any
) -> None:
    """Refuse a plan of more than ``MAX_RUNS`` runs, naming the key that makes it large;
    ``members`` is the ensemble's size (0 without one, which runs each point once)."""
    runs = points * max(members, 1) * policies * replications
    crossed = f" x {members} ensemble members" if members else ""
    _expect(
        runs <= MAX_RUNS, source, key, value,
        f"at most {MAX_RUNS:,} runs in all (here {points:,} design points{crossed} x {policies} policies "
        f"x {replications} replications = {runs:,})",
    )


def _nearest_powers_of_two(value: int) -> str:
    """The powers of 2 either side of ``value`` (>= 2), e.g. "8 or 16" for 10."""
    below = 1 << (value.bit_length() - 1)
    return f"{below} or {below * 2}" if below >= 2 else "2 or 4"


def _factor(name: str, spec: Any, design: str, base: Scenario, source: Path) -> Factor:
    key = f"factors.{name}"
    if design == "full_factorial":
        _expect(isinstance(spec, list) and len(spec) > 0, source, key, spec, "a non-empty list of levels")
        for level in spec:  # every level must be a value the model accepts
            base.with_settings({name: level}, source=f"{source}: {key}")
        return Factor(name=name, levels=tuple(spec))
    _expect(
        isinstance(spec, dict) and set(spec) == {"low", "high"}
        and all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool) for k in spec),
        source, key, spec, "a range {low = ..., high = ...}",
    )
    for end in (spec["low"], spec["high"]):  # finite values the model accepts
        base.with_settings({name: end}, source=f"{source}: {key}")
    _expect(spec["low"] < spec["high"], source, key, spec, "low < high (a range that is not empty)")
    # Sampled values are rounded only for settings that are whole numbers (months).
    return Factor(name=name, low=float(spec["low"]), high=float(spec["high"]), integer=setting_type(name) is int)


def _samples(table: dict[str, Any], design: str, source: Path) -> int:
    """The number of samples of a sampled design (0 for a full factorial): a whole number
    >= 2, and a power of 2 for Sobol, whose sequence keeps its properties only then."""
    samples = table.get("samples", 0)
    if design == "full_factorial":
        return samples
    _expect(_is_int(samples) and samples >= 2, source, "samples", samples, f"a whole number >= 2 for design {design}")
    _expect(
        samples <= MAX_RUNS, source, "samples", samples, f"at most {MAX_RUNS:,} samples (at most {MAX_RUNS:,} runs in all)"
    )
    _expect(
        design != "sobol" or samples & (samples - 1) == 0, source, "samples", samples,
        f"a power of 2 for design sobol, e.g. {_nearest_powers_of_two(samples)}",
    )
    return samples


def _whole_number(table: dict[str, Any], key: str, default: int, low: int, source: Path, high: int | None = None) -> int:
    value = table.get(key, default)
    if high is None:
        _expect(_is_int(value) and value >= low, source, key, value, f"a whole number >= {low}")
    else:
        _expect(_is_int(value) and low <= value <= high, source, key, value, f"a whole number in [{low}, {high}]")
    return value


def _policies(table: dict[str, Any], scenario: Scenario, source: Path) -> dict[str, dict[str, Any]]:
    """The "none" arm and each named policy, whose settings the scenario must accept."""
    raw_policies = table.get("policies", {})
    _expect(isinstance(raw_policies, dict), source, "policies", raw_policies, "a table of policies")
    policies: dict[str, dict[str, Any]] = {NO_POLICY: {}}
    for policy, settings in raw_policies.items():
        key = f"policies.{policy}"
        _expect(isinstance(settings, dict), source, key, settings, "a table of lever settings")
        _expect(policy != NO_POLICY or settings == {}, source, key, settings, f"no settings ('{NO_POLICY}' is the no-policy arm)")
        scenario.with_settings(settings, source=f"{source}: {key}")
        policies[policy] = dict(settings)
    return policies


def _ensemble(table: dict[str, Any], scenario: Scenario, source: Path) -> tuple[Member, ...]:
    """The members of the table's ``ensemble`` folder (a path relative to ``source``'s
    folder), best first, each of whose settings the base scenario must accept; () without
    the key. A folder without member files is a ScenarioError on ``ensemble``."""
    if "ensemble" not in table:
        return ()
    folder = table["ensemble"]
    _expect(isinstance(folder, str), source, "ensemble", folder, "the path of a folder of member files")
    members = load_ensemble(source.parent / folder, source)
    for member in members:
        scenario.with_settings(member.settings, source=f"{source}: ensemble {member.name}")
    return members


def load_experiment(path: str | Path, use_ensemble: bool = True) -> Experiment:
    """Read and validate an experiment file; every problem is a ScenarioError naming the key.
    Its ``scenario`` and ``ensemble`` are paths relative to the file; ``use_ensemble=False``
    reads it as if it had no ``ensemble`` (``ree batch --no-ensemble``)."""
    source = Path(path)
    return experiment_from_dict(read_toml(source, source, "file"), source=source, use_ensemble=use_ensemble)


def experiment_from_dict(
    table: dict[str, Any], scenario: Scenario | str | Path | None = None, source: str | Path = "<python>",
    use_ensemble: bool = True,
) -> Experiment:
    """Validate an experiment given as a table (the keys of an experiment file), the
    Python-first way to build one: ``experiment_from_dict({"name": "mine", "factors":
    {"quota_cut": [0.2, 0.5]}, "replications": 5}, scenario=load_scenario(...))``. The base
    scenario is ``scenario`` (a Scenario or a path) or else the table's ``scenario`` key, a
    path relative to ``source``'s folder; so is the ``ensemble`` folder, which is not read
    when ``use_ensemble`` is False. Every problem is a ScenarioError naming the key."""
    source = Path(source)
    for key in table:
        _expect(key in _KEYS, source, key, NOT_SHOWN, f"a key among {', '.join(sorted(_KEYS))}")
    name = table.get("name", source.stem)
    _expect(isinstance(name, str), source, "name", name, "a string")
    _expect(plain_name(name) is None, source, "name", name, f"{plain_name(name)}: the store is results/<name>/")
    description = table.get("description", "")
    _expect(isinstance(description, str), source, "description", description, "a string")
    scenario, scenario_path = _base_scenario(table, scenario, source)
    design = table.get("design", "full_factorial")
    _expect(design in DESIGNS, source, "design", design, f"one of {', '.join(DESIGNS)}")
    samples = _samples(table, design, source)
    replications = _whole_number(table, "replications", 1, 1, source)
    seed = _whole_number(table, "seed", 0, 0, source)
    record_every = _whole_number(table, "record_every", 1, 1, source, high=scenario.horizon_months)
    series = table.get("series", list(DEFAULT_SERIES))
    _expect(
        isinstance(series, list) and all(isinstance(v, str) and v in RECORDED for v in series), source, "series", series,
        f"a list of recorded variables from {', '.join(RECORDED)}",
    )
    record_agents = table.get("record_agents", False)
    _expect(isinstance(record_agents, bool), source, "record_agents", record_agents, "true or false")
    raw_factors = table.get("factors", {})
    _expect(isinstance(raw_factors, dict), source, "factors", raw_factors, "a table of factors")
    factors = tuple(_factor(n, spec, design, scenario, source) for n, spec in raw_factors.items())
    _expect(design == "full_factorial" or factors, source, "factors", raw_factors, f"at least one range for design {design}")
    policies = _policies(table, scenario, source)
    ensemble = _ensemble(table, scenario, source) if use_ensemble else ()
    points = design_points(design, samples, factors)
    if points * len(policies) > MAX_RUNS or design != "full_factorial":
        key, value = ("samples", samples) if design != "full_factorial" else ("factors", f"{points:,} level combinations")
    elif points * max(len(ensemble), 1) * len(policies) > MAX_RUNS:
        key, value = "ensemble", f"{len(ensemble)} members"
    else:  # the design is small enough: what makes the plan large is the replications
        key, value = "replications", replications
    _check_run_count(points, len(ensemble), len(policies), replications, source, key, value)
    _check_combinations(factors, policies, design, scenario, source)
    return Experiment(
        name=name, source=source, scenario=scenario, scenario_path=scenario_path, design=design,
        samples=samples, factors=factors, policies=policies, replications=replications, seed=seed,
        record_every=record_every, series_variables=tuple(series), description=description,
        record_agents=record_agents, ensemble=ensemble,
    )


# Full-factorial design points x policies checked together at load (beyond this, a
# clashing combination is left to its run, which records it as FAILED).
MAX_CHECKED_COMBINATIONS = 10_000


def _check_combinations(
    factors: tuple[Factor, ...], policies: dict[str, dict[str, Any]], design: str, scenario: Scenario, source: Path
) -> None:
    """Every design point of a full factorial with every policy, as one run would set them:
    levels valid alone can clash together (a shock start beyond a shorter horizon), and a
    policy may not set a swept factor (one of the two would silently win)."""
    swept = {f.name for f in factors}
    for policy, settings in policies.items():
        both = sorted(swept & set(settings))
        _expect(not both, source, f"policies.{policy}", both, "settings that are not also swept factors")
    if design != "full_factorial":
        return
    names = [f.name for f in factors]
    combinations = itertools.islice(itertools.product(*(f.levels for f in factors)), MAX_CHECKED_COMBINATIONS)
    for levels in combinations:
        point = dict(zip(names, levels, strict=True))
        for policy, settings in policies.items():
            where = f"{source}: design point {point}" + ("" if policy == NO_POLICY else f", policy {policy}")
            scenario.with_settings({**point, **settings}, source=where)


def _base_scenario(table: dict[str, Any], scenario: Scenario | str | Path | None, source: Path) -> tuple[Scenario, Path]:
    """The base scenario and where it came from: the ``scenario`` argument, or else the
    table's ``scenario`` key (a path relative to ``source``)."""
    if isinstance(scenario, Scenario):
        _expect("scenario" not in table, source, "scenario", table.get("scenario"), "no scenario key when one is given")
        return scenario, Path(f"<scenario {scenario.name}>")
    if scenario is None:
        scenario = table.get("scenario")
        _expect(isinstance(scenario, str), source, "scenario", scenario, "the path of a scenario file")
        path = (source.parent / scenario).resolve()
    else:
        path = Path(scenario).resolve()
    return load_scenario(path), path
