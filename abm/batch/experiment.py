"""Experiment files: a base scenario, factors to sweep, policies to compare, replications.

An experiment is data a non-programmer can read (TOML), refused with the same one-line
error as a scenario when a key, value or combination is wrong:

    name = "quota_sweep"
    scenario = "quota_shock.toml"        # relative to this file
    design = "full_factorial"            # or latin_hypercube, sobol, morris
    replications = 10
    seed = 20261128
    record_every = 3                     # months between recorded steps
    [factors]                            # model keywords or scenario keys
    quota_cut = [0.0, 0.4, 0.8]          # lists for a full factorial ...
    "market.short_run_elasticity" = {low = -0.2, high = -0.1}   # ... ranges for sampled designs
    [policies]                           # lever settings to compare; "none" is added
    stockpile = {stockpile_months = 3.0}
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from abm.model import RECORDED
from abm.scenario import Scenario, ScenarioError, load_scenario, setting_type

DESIGNS = ("full_factorial", "latin_hypercube", "sobol", "morris")
NO_POLICY = "none"
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

    def with_replications(self, replications: int) -> "Experiment":
        if replications < 1:
            raise ScenarioError(self.source, "replications", replications, "a whole number >= 1")
        return Experiment(**{**self.__dict__, "replications": replications})


_KEYS = {
    "name", "description", "scenario", "design", "samples", "factors", "policies",
    "replications", "seed", "record_every", "series",
}


def _expect(condition: bool, source: Path, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ScenarioError(source, key, value, expected)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    _expect(spec["low"] < spec["high"], source, key, spec, "low < high (a range that is not empty)")
    for end in (spec["low"], spec["high"]):
        base.with_settings({name: end}, source=f"{source}: {key}")
    # Sampled values are rounded only for settings that are whole numbers (months).
    return Factor(name=name, low=float(spec["low"]), high=float(spec["high"]), integer=setting_type(name) is int)


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; every problem is a ScenarioError naming the key."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ScenarioError(source, "file", str(source), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(source, "(syntax)", str(error), "well-formed TOML") from None
    for key, value in table.items():
        _expect(key in _KEYS, source, key, value, f"a key among {', '.join(sorted(_KEYS))}")
    name = table.get("name", source.stem)
    _expect(isinstance(name, str) and name.strip() != "" and "/" not in name, source, "name", name, "a file-safe name")
    scenario_name = table.get("scenario")
    _expect(isinstance(scenario_name, str), source, "scenario", scenario_name, "the path of a scenario file")
    scenario_path = (source.parent / scenario_name).resolve()
    scenario = load_scenario(scenario_path)
    design = table.get("design", "full_factorial")
    _expect(design in DESIGNS, source, "design", design, f"one of {', '.join(DESIGNS)}")
    samples = table.get("samples", 0)
    if design != "full_factorial":
        _expect(_is_int(samples) and samples >= 2, source, "samples", samples, f"a whole number >= 2 for design {design}")
    replications = table.get("replications", 1)
    _expect(_is_int(replications) and replications >= 1, source, "replications", replications, "a whole number >= 1")
    seed = table.get("seed", 0)
    _expect(_is_int(seed) and seed >= 0, source, "seed", seed, "a whole number >= 0")
    record_every = table.get("record_every", 1)
    _expect(_is_int(record_every) and record_every >= 1, source, "record_every", record_every, "a whole number >= 1")
    series = table.get("series", list(DEFAULT_SERIES))
    _expect(
        isinstance(series, list) and all(v in RECORDED for v in series), source, "series", series,
        f"a list of recorded variables from {', '.join(RECORDED)}",
    )
    raw_factors = table.get("factors", {})
    _expect(isinstance(raw_factors, dict), source, "factors", raw_factors, "a table of factors")
    factors = tuple(_factor(n, spec, design, scenario, source) for n, spec in raw_factors.items())
    _expect(design == "full_factorial" or factors, source, "factors", raw_factors, f"at least one range for design {design}")
    raw_policies = table.get("policies", {})
    _expect(isinstance(raw_policies, dict), source, "policies", raw_policies, "a table of policies")
    policies: dict[str, dict[str, Any]] = {NO_POLICY: {}}
    for policy, settings in raw_policies.items():
        key = f"policies.{policy}"
        _expect(isinstance(settings, dict), source, key, settings, "a table of lever settings")
        _expect(policy != NO_POLICY or settings == {}, source, key, settings, f"no settings ('{NO_POLICY}' is the no-policy arm)")
        scenario.with_settings(settings, source=f"{source}: {key}")
        policies[policy] = dict(settings)
    return Experiment(
        name=name, source=source, scenario=scenario, scenario_path=scenario_path, design=design,
        samples=samples, factors=factors, policies=policies, replications=replications, seed=seed,
        record_every=record_every, series_variables=tuple(series), description=table.get("description", ""),
    )
