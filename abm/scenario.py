"""Typed, validated scenarios loaded from TOML.

A scenario is data, not code: an analyst writes a TOML file, this module turns it into
frozen dataclasses or refuses it with one line that names the file, the key, the value
and what was expected. Defaults come from ``abm/data/parameters.csv`` so every number
has its source in one place; a file may ``extends = "other.toml"`` to state only what
it changes (tables merge key by key, everything else replaces).
"""

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from abm.data import load_calibration

_CALIBRATION = load_calibration()
ELEMENTS: tuple[str, ...] = _CALIBRATION.elements
REGIONS: tuple[str, ...] = _CALIBRATION.regions
# Regions that mine or separate: only they have exports to restrict.
PRODUCERS: tuple[str, ...] = tuple(
    r for r in REGIONS
    if r in {n for n, _, _ in _CALIBRATION.mines} | {n for n, _, _ in _CALIBRATION.refiners}
)
MINES: frozenset[tuple[str, str]] = frozenset((n, d) for n, d, _ in _CALIBRATION.mines)
EVENT_KINDS = ("quota", "ban", "outage")
DEPOSITS: tuple[str, ...] = _CALIBRATION.deposits


class ScenarioError(ValueError):
    """Bad scenario input; its message is the one line a user sees."""

    def __init__(self, source: str | Path, key: str, value: Any, expected: str) -> None:
        self.source, self.key, self.value, self.expected = str(source), key, value, expected
        super().__init__(f"{source}: {key} = {value!r}: expected {expected}")


# A check returns None when the value is acceptable, otherwise what was expected.
Check = Callable[[Any], str | None]


def _between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"a number in [{low:g}, {high:g}]"


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"a number >= {low:g}"


def _at_most(high: float) -> Check:
    return lambda v: None if v <= high else f"a number <= {high:g}"


def _members(allowed: tuple[str, ...], what: str) -> Check:
    return lambda v: (
        None if all(x in allowed for x in v) else f"a list of {what} from {', '.join(allowed)}"
    )


def _one_of(allowed: tuple[str, ...], what: str) -> Check:
    return lambda v: None if v in allowed else f"{what}, one of {', '.join(allowed)}"


def _pair(value: str) -> str | None:
    parts = value.split("-")
    if len(parts) == 2 and parts[0] != parts[1] and all(p in REGIONS for p in parts):
        return None
    return f"a pair of two different regions like 'US-CN' from {', '.join(REGIONS)}"


def _pairs(value: tuple[str, ...]) -> str | None:
    return next((problem for pair in value if (problem := _pair(pair))), None)


SHARE = _between(0.0, 1.0)
NON_NEGATIVE = _at_least(0.0)
POSITIVE = _at_least(1e-12)
ELEMENT_LIST = _members(ELEMENTS, "elements")
REGION = _one_of(REGIONS, "a region")
PRODUCER = _one_of(PRODUCERS, "a region that mines or separates")


def _spec(check: Check | None = None, **kwargs: Any) -> Any:
    return field(metadata={"check": check}, **kwargs)


def _csv_default(section: str, name: str) -> Any:
    return _spec(default=_CALIBRATION.parameter_defaults(section)[name])


@dataclass(frozen=True)
class MarketParameters:
    """Price formation, demand, inventories and contracts (sources in parameters.csv)."""

    price_adjustment: float = _csv_default("market", "price_adjustment")
    target_cover_months: float = _csv_default("market", "target_cover_months")
    trend_months: float = _csv_default("market", "trend_months")
    min_price_ratio: float = _csv_default("market", "min_price_ratio")
    short_run_elasticity: float = _csv_default("market", "short_run_elasticity")
    long_run_elasticity: float = _csv_default("market", "long_run_elasticity")
    price_memory_months: float = _csv_default("market", "price_memory_months")
    supply_elasticity: float = _csv_default("market", "supply_elasticity")
    demand_volatility: float = _csv_default("market", "demand_volatility")
    inventory_months: float = _csv_default("market", "inventory_months")
    restock_months: float = _csv_default("market", "restock_months")
    hoarding_response: float = _csv_default("market", "hoarding_response")
    contract_share: float = _csv_default("market", "contract_share")
    contract_months: int = _csv_default("market", "contract_months")
    separation_yield: float = _csv_default("market", "separation_yield")
    collection_rate: float = _csv_default("market", "collection_rate")
    capacity_growth_per_year: float = _csv_default("market", "capacity_growth_per_year")


_MARKET_CHECKS: dict[str, Check] = {
    "price_adjustment": NON_NEGATIVE,
    "target_cover_months": POSITIVE,
    "trend_months": NON_NEGATIVE,
    "min_price_ratio": SHARE,
    "short_run_elasticity": _at_most(0.0),
    "long_run_elasticity": _at_most(0.0),
    "price_memory_months": _at_least(1.0),
    "supply_elasticity": NON_NEGATIVE,
    "demand_volatility": NON_NEGATIVE,
    "inventory_months": NON_NEGATIVE,
    "restock_months": _at_least(1.0),
    "hoarding_response": NON_NEGATIVE,
    "contract_share": SHARE,
    "contract_months": _at_least(1),
    "separation_yield": _between(1e-6, 1.0),
    "collection_rate": SHARE,
    "capacity_growth_per_year": _between(-0.5, 1.0),
}


@dataclass(frozen=True)
class TensionParameters:
    """Bilateral tension: a mean-reverting process with escalation jumps, and the rules
    that turn it into export restrictions by the second region of each pair."""

    pairs: tuple[str, ...] = _spec(_pairs, default=("US-CN", "JP-CN", "EU-CN", "AU-CN"))
    mean: float = _csv_default("tension", "mean")
    reversion: float = _csv_default("tension", "reversion")
    volatility: float = _csv_default("tension", "volatility")
    jump_probability: float = _csv_default("tension", "jump_probability")
    jump_size: float = _csv_default("tension", "jump_size")
    quota_threshold: float = _csv_default("tension", "quota_threshold")
    max_tension_cut: float = _csv_default("tension", "max_tension_cut")
    ban_threshold: float = _csv_default("tension", "ban_threshold")
    ban_elements: tuple[str, ...] = _spec(ELEMENT_LIST, default=("Dy", "Tb"))


_TENSION_CHECKS: dict[str, Check] = {
    "mean": SHARE,
    "reversion": SHARE,
    "volatility": NON_NEGATIVE,
    "jump_probability": SHARE,
    "jump_size": SHARE,
    "quota_threshold": SHARE,
    "max_tension_cut": SHARE,
    "ban_threshold": SHARE,
}


@dataclass(frozen=True)
class Shock:
    """The headline experiment: the exporter removes ``quota_cut`` of its exports."""

    exporter: str = _spec(PRODUCER, default="CN")
    quota_cut: float = _spec(SHARE, default=_CALIBRATION.parameter_defaults("shock")["quota_cut"])
    start: int = _spec(NON_NEGATIVE, default=int(_CALIBRATION.parameter_defaults("shock")["start"]))
    months: int = _spec(NON_NEGATIVE, default=int(_CALIBRATION.parameter_defaults("shock")["months"]))
    elements: tuple[str, ...] = _spec(ELEMENT_LIST, default=ELEMENTS)


@dataclass(frozen=True)
class Event:
    """A scripted event from month ``start`` for ``months`` months, by ``nation``:
    ``quota`` withholds ``cut`` of its exports of ``elements``; ``ban`` stops exports of
    ``elements`` to ``destination``; ``outage`` takes ``cut`` of the output of its mines
    of type ``deposit`` (a disaster, a strike, a border closure)."""

    kind: str = _spec(_one_of(EVENT_KINDS, "an event kind"))
    nation: str = _spec(PRODUCER)
    start: int = _spec(NON_NEGATIVE)
    months: int = _spec(NON_NEGATIVE)
    cut: float = _spec(SHARE, default=1.0)
    destination: str = _spec(lambda v: None if v == "" else REGION(v), default="")
    elements: tuple[str, ...] = _spec(ELEMENT_LIST, default=ELEMENTS)
    deposit: str = _spec(lambda v: None if v == "" else _one_of(DEPOSITS, "a deposit type")(v), default="")


@dataclass(frozen=True)
class Scenario:
    """Everything one run needs besides its seed."""

    name: str = _spec(lambda v: None if v.strip() else "a non-empty name", default="baseline")
    description: str = ""
    start_year: int = _spec(_between(1900, 2200), default=2025)
    horizon_months: int = _spec(_at_least(1), default=240)
    market: MarketParameters = field(default_factory=MarketParameters)
    tension: TensionParameters = field(default_factory=TensionParameters)
    shock: Shock = field(default_factory=Shock)
    events: tuple[Event, ...] = ()

    def with_overrides(self, source: str = "keyword", **overrides: Any) -> "Scenario":
        """A copy with model keywords applied (``quota_cut``, ``shock_start``, ...),
        validated exactly as the same keys in a file would be."""
        scenario = self
        for keyword, value in overrides.items():
            if value is None:
                continue
            if keyword not in KEYWORD_PATHS:
                raise ScenarioError(source, keyword, value, f"one of {', '.join(KEYWORD_PATHS)}")
            section, key = KEYWORD_PATHS[keyword]
            if section is None:
                scenario = dataclasses.replace(
                    scenario, **{key: _checked(Scenario, key, value, key, source)}
                )
            else:
                part = getattr(scenario, section)
                checked = _checked(type(part), key, value, f"{section}.{key}", source)
                scenario = dataclasses.replace(
                    scenario, **{section: dataclasses.replace(part, **{key: checked})}
                )
        _check_events_fit(scenario, source)
        return scenario


# Model keywords (as used by mesa.batch_run and SolaraViz) and where they live in a scenario.
KEYWORD_PATHS: dict[str, tuple[str | None, str]] = {
    "horizon_months": (None, "horizon_months"),
    "quota_cut": ("shock", "quota_cut"),
    "shock_start": ("shock", "start"),
    "shock_months": ("shock", "months"),
    "tension_volatility": ("tension", "volatility"),
}

_EXTRA_CHECKS: dict[type, dict[str, Check]] = {
    MarketParameters: _MARKET_CHECKS,
    TensionParameters: _TENSION_CHECKS,
}
_SECTIONS: dict[str, type] = {"market": MarketParameters, "tension": TensionParameters, "shock": Shock}


def _type_problem(kind: Any, value: Any) -> tuple[Any, str | None]:
    """Coerce ``value`` to ``kind`` where TOML's types allow it, or say what was expected."""
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return value, "a number"
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return value, "a whole number"
    if kind is str:
        return value, None if isinstance(value, str) else "a string"
    if kind == tuple[str, ...]:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value), None
        return value, "a list of strings"
    raise TypeError(f"no coercion for {kind}")


def _checked(cls: type, name: str, value: Any, key: str, source: str | Path) -> Any:
    spec = next(f for f in fields(cls) if f.name == name)
    value, problem = _type_problem(spec.type, value)
    check = spec.metadata.get("check") or _EXTRA_CHECKS.get(cls, {}).get(name)
    if problem is None and check is not None:
        problem = check(value)
    if problem is not None:
        raise ScenarioError(source, key, value, problem)
    return value


def _build(cls: type, table: Mapping[str, Any], where: str, source: str | Path) -> Any:
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise ScenarioError(source, where + key, value, f"a key among {', '.join(known)}")
        values[key] = _checked(cls, key, value, where + key, source)
    missing = [
        n for n, f in known.items()
        if n not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ScenarioError(source, where + missing[0], None, "a value (the key is required)")
    return cls(**values)


def _check_events_fit(scenario: Scenario, source: str | Path) -> None:
    if scenario.shock.start >= scenario.horizon_months and scenario.shock.quota_cut > 0:
        raise ScenarioError(
            source, "shock.start", scenario.shock.start,
            f"a month before the horizon ({scenario.horizon_months})",
        )
    for index, event in enumerate(scenario.events):
        if event.kind == "ban" and event.destination == "":
            raise ScenarioError(source, f"events[{index}].destination", "", "a region for a ban")
        if event.kind == "outage" and (event.nation, event.deposit) not in MINES:
            mined_there = sorted(d for n, d in MINES if n == event.nation) or ["none"]
            raise ScenarioError(
                source, f"events[{index}].deposit", event.deposit,
                f"a deposit type {event.nation} mines ({', '.join(mined_there)})",
            )
        if event.destination == event.nation:
            raise ScenarioError(
                source, f"events[{index}].destination", event.destination, "a region other than the nation"
            )


def scenario_from_dict(table: Mapping[str, Any], source: str | Path = "<dict>") -> Scenario:
    """Validate a parsed TOML table (without ``extends``) into a Scenario."""
    top: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ScenarioError(source, key, value, "a table")
            parts[key] = _build(_SECTIONS[key], value, f"{key}.", source)
        elif key == "events":
            if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
                raise ScenarioError(source, key, value, "an array of tables [[events]]")
            parts[key] = tuple(
                _build(Event, event, f"events[{index}].", source) for index, event in enumerate(value)
            )
        else:
            top[key] = value
    scenario = dataclasses.replace(_build(Scenario, top, "", source), **parts)
    _check_events_fit(scenario, source)
    return scenario


def _merge(parent: dict[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _read_table(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in chain:
        raise ScenarioError(chain[-1], "extends", str(path), "a file that does not extend itself")
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ScenarioError(chain[-1] if chain else path, "extends" if chain else "file", str(path), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(path, "(syntax)", str(error), "well-formed TOML") from None
    parent_name = table.pop("extends", None)
    if parent_name is None:
        return table
    if not isinstance(parent_name, str):
        raise ScenarioError(path, "extends", parent_name, "a path to a TOML file")
    parent = _read_table((path.parent / parent_name).resolve(), (*chain, path))
    return _merge(parent, table)


def load_scenario(path: str | Path) -> Scenario:
    """Read, merge (``extends``) and validate a scenario file."""
    path = Path(path)
    return scenario_from_dict(_read_table(path.resolve()), source=path)
