"""Typed, validated scenarios loaded from TOML.

A scenario is data, not code: an analyst writes a TOML file, this module turns it into
frozen dataclasses or refuses it with one line that names the file, the key, the value
and what was expected. Defaults come from ``abm/data/parameters.csv`` so every number
has its source in one place; a file may ``extends = "other.toml"`` to state only what
it changes (tables merge key by key, everything else replaces).
"""

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from abm.data import BASE_YEARS, DEFAULT_BASE_YEAR, load_calibration
from abm.levers import (
    LEVER_KEYWORDS, LEVER_SECTIONS, Agreement, Contracts, DomesticMining, Partnership, PriceFloor,
    Recycling, Refining, Stockpile, Substitution,
)
from abm.schema import (
    DEPOSIT, ELEMENT_LIST, ELEMENTS, NON_NEGATIVE, POSITIVE, PRODUCER, REGION, REGIONS, SHARE,
    ScenarioError, at_least, at_most, between, build, checked, csv_default, one_of, optional, spec,
)

__all__ = ["Event", "MarketParameters", "Scenario", "ScenarioError", "Shock", "TensionParameters", "load_scenario"]

EVENT_KINDS = ("quota", "ban", "outage", "export_tax")


def _pair(value: str) -> str | None:
    parts = value.split("-")
    if len(parts) == 2 and parts[0] != parts[1] and all(p in REGIONS for p in parts):
        return None
    return f"a pair of two different regions like 'US-CN' from {', '.join(REGIONS)}"


def _pairs(value: tuple[str, ...]) -> str | None:
    return next((problem for pair in value if (problem := _pair(pair))), None)


@dataclass(frozen=True)
class MarketParameters:
    """Price formation, demand, inventories and supply response (sources in parameters.csv)."""

    price_adjustment: float = csv_default("market", "price_adjustment", NON_NEGATIVE)
    target_cover_months: float = csv_default("market", "target_cover_months", POSITIVE)
    trend_months: float = csv_default("market", "trend_months", NON_NEGATIVE)
    min_price_ratio: float = csv_default("market", "min_price_ratio", SHARE)
    arbitrage_months: float = csv_default("market", "arbitrage_months", at_least(1.0))
    short_run_elasticity: float = csv_default("market", "short_run_elasticity", at_most(0.0))
    long_run_elasticity: float = csv_default("market", "long_run_elasticity", at_most(0.0))
    price_memory_months: float = csv_default("market", "price_memory_months", at_least(1.0))
    supply_elasticity: float = csv_default("market", "supply_elasticity", NON_NEGATIVE)
    demand_volatility: float = csv_default("market", "demand_volatility", NON_NEGATIVE)
    inventory_months: float = csv_default("market", "inventory_months", NON_NEGATIVE)
    restock_months: float = csv_default("market", "restock_months", at_least(1.0))
    hoarding_response: float = csv_default("market", "hoarding_response", NON_NEGATIVE)
    separation_yield: float = csv_default("market", "separation_yield", between(1e-6, 1.0))
    collection_rate: float = csv_default("market", "collection_rate", SHARE)
    smuggling_share: float = csv_default("market", "smuggling_share", SHARE)
    capacity_growth_per_year: float = csv_default("market", "capacity_growth_per_year", between(-0.5, 1.0))


@dataclass(frozen=True)
class TensionParameters:
    """Bilateral tension: a mean-reverting process with escalation jumps, and the rules
    that turn it into export restrictions by the second region of each pair."""

    pairs: tuple[str, ...] = spec(_pairs, default=("US-CN", "JP-CN", "EU-CN", "AU-CN"))
    mean: float = csv_default("tension", "mean", SHARE)
    reversion: float = csv_default("tension", "reversion", SHARE)
    volatility: float = csv_default("tension", "volatility", NON_NEGATIVE)
    jump_probability: float = csv_default("tension", "jump_probability", SHARE)
    jump_size: float = csv_default("tension", "jump_size", SHARE)
    quota_threshold: float = csv_default("tension", "quota_threshold", SHARE)
    max_tension_cut: float = csv_default("tension", "max_tension_cut", SHARE)
    ban_threshold: float = csv_default("tension", "ban_threshold", SHARE)
    ban_elements: tuple[str, ...] = spec(ELEMENT_LIST, default=("Dy", "Tb"))

    @cached_property
    def parsed_pairs(self) -> tuple[tuple[str, str], ...]:
        """Each pair as (partner, restricting exporter), e.g. ("US", "CN")."""
        return tuple(tuple(pair.split("-")) for pair in self.pairs)


@dataclass(frozen=True)
class Shock:
    """The headline experiment: the exporter removes ``quota_cut`` of its exports."""

    exporter: str = spec(PRODUCER, default="CN")
    quota_cut: float = csv_default("shock", "quota_cut", SHARE)
    start: int = csv_default("shock", "start", NON_NEGATIVE)
    months: int = csv_default("shock", "months", NON_NEGATIVE)
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=ELEMENTS)


@dataclass(frozen=True)
class Event:
    """A scripted event from month ``start`` for ``months`` months, by ``nation``:
    ``quota`` withholds ``cut`` of its exports of ``elements`` or, when
    ``tonnes_per_year`` is set, caps its exports of ``elements`` together at that many
    tonnes of REO a year (a historical quota in tonnes, as China's 2009-2014 quotas);
    ``ban`` stops exports of ``elements`` to ``destination``; ``outage`` takes ``cut`` of
    the output of its mines of type ``deposit`` (a disaster, a strike, a border
    closure); ``export_tax`` levies ``rate`` (ad valorem) on its exports of ``elements``."""

    kind: str = spec(one_of(EVENT_KINDS, "an event kind"))
    nation: str = spec(PRODUCER)
    start: int = spec(NON_NEGATIVE)
    months: int = spec(NON_NEGATIVE)
    cut: float = spec(SHARE, default=1.0)
    destination: str = spec(optional(REGION), default="")
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=ELEMENTS)
    deposit: str = spec(optional(DEPOSIT), default="")
    tonnes_per_year: float = spec(NON_NEGATIVE, default=0.0)
    rate: float = spec(between(0.0, 10.0), default=0.0)


@dataclass(frozen=True)
class Scenario:
    """Everything one run needs besides its seed."""

    name: str = spec(lambda v: None if v.strip() else "a non-empty name", default="baseline")
    description: str = ""
    base_year: int = spec(
        lambda v: None if v in BASE_YEARS else f"a base year with a calibration in abm/data: {BASE_YEARS}",
        default=DEFAULT_BASE_YEAR,
    )
    start_year: int = spec(between(1900, 2200), default=2025)
    horizon_months: int = spec(at_least(1), default=240)
    market: MarketParameters = field(default_factory=MarketParameters)
    tension: TensionParameters = field(default_factory=TensionParameters)
    shock: Shock = field(default_factory=Shock)
    events: tuple[Event, ...] = ()
    domestic_mining: DomesticMining = field(default_factory=DomesticMining)
    refining: Refining = field(default_factory=Refining)
    partnership: Partnership = field(default_factory=Partnership)
    substitution: Substitution = field(default_factory=Substitution)
    recycling: Recycling = field(default_factory=Recycling)
    stockpile: Stockpile = field(default_factory=Stockpile)
    contracts: Contracts = field(default_factory=Contracts)
    agreement: Agreement = field(default_factory=Agreement)
    price_floor: PriceFloor = field(default_factory=PriceFloor)

    def with_overrides(self, source: str = "keyword", **overrides: Any) -> "Scenario":
        """A copy with model keywords applied (``quota_cut``, ``stockpile_months``, ...),
        validated exactly as the same keys in a file would be; None keeps a value."""
        return self.with_settings({k: v for k, v in overrides.items() if v is not None}, source)

    def with_settings(self, settings: Mapping[str, Any], source: str | Path = "keyword") -> "Scenario":
        """A copy with settings applied, each named by a model keyword (``quota_cut``) or
        by its place in a scenario file (``market.short_run_elasticity``): what an
        experiment's factors and policies set."""
        scenario = self
        for name, value in settings.items():
            section, key = _setting_path(name, value, source)
            if section is None:
                scenario = dataclasses.replace(scenario, **{key: checked(Scenario, key, value, key, source)})
            else:
                part = getattr(scenario, section)
                value = checked(type(part), key, value, f"{section}.{key}", source)
                scenario = dataclasses.replace(scenario, **{section: dataclasses.replace(part, **{key: value})})
        _check_consistency(scenario, source)
        return scenario


def setting_type(name: str) -> type:
    """The Python type of a setting (a model keyword or a ``section.key``)."""
    section, key = _setting_path(name, None, "setting")
    owner = Scenario if section is None else _SECTIONS[section]
    return next(f.type for f in dataclasses.fields(owner) if f.name == key)


def _setting_path(name: str, value: Any, source: str | Path) -> tuple[str | None, str]:
    if name in KEYWORD_PATHS:
        return KEYWORD_PATHS[name]
    section, _, key = name.partition(".")
    if section in _SECTIONS and key in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
        return section, key
    raise ScenarioError(
        source, name, value, f"a model keyword ({', '.join(KEYWORD_PATHS)}) or a scenario key like market.price_adjustment"
    )


# Model keywords (as used by mesa.batch_run and SolaraViz) and where they live in a scenario.
KEYWORD_PATHS: dict[str, tuple[str | None, str]] = {
    "horizon_months": (None, "horizon_months"),
    "quota_cut": ("shock", "quota_cut"),
    "shock_start": ("shock", "start"),
    "shock_months": ("shock", "months"),
    "tension_volatility": ("tension", "volatility"),
    **LEVER_KEYWORDS,
}
_SECTIONS: dict[str, type] = {
    "market": MarketParameters, "tension": TensionParameters, "shock": Shock, **LEVER_SECTIONS,
}


def _check_consistency(scenario: Scenario, source: str | Path) -> None:
    """Every field's own check and the rules across keys, for files and for scenarios
    built in Python alike (the model validates every scenario it is given through
    ``with_overrides``)."""
    for section_name, section in [(None, scenario), *((n, getattr(scenario, n)) for n in _SECTIONS)]:
        for spec_ in dataclasses.fields(section):
            if section_name is None and spec_.name in _SECTIONS or spec_.name == "events":
                continue
            key = spec_.name if section_name is None else f"{section_name}.{spec_.name}"
            checked(type(section), spec_.name, getattr(section, spec_.name), key, source)
    for index, event in enumerate(scenario.events):
        for spec_ in dataclasses.fields(event):
            checked(Event, spec_.name, getattr(event, spec_.name), f"events[{index}].{spec_.name}", source)
    for lever in ("refining", "domestic_mining"):
        region = getattr(scenario, lever).region
        if getattr(scenario, lever).tonnes_per_year > 0 and region == scenario.shock.exporter:
            raise ScenarioError(source, f"{lever}.region", region, f"a region other than the exporter {region}")
    calibration = load_calibration(scenario.base_year)
    producers = calibration.producers
    mines = {(n, d) for n, d, _ in calibration.mines}
    if scenario.shock.exporter not in producers:
        raise ScenarioError(
            source, "shock.exporter", scenario.shock.exporter,
            f"a region that mines or separates in base year {scenario.base_year} ({', '.join(producers)})",
        )
    for pair in scenario.tension.pairs:
        restrictor = pair.split("-")[1]
        if restrictor not in producers:
            raise ScenarioError(
                source, "tension.pairs", pair, f"a pair whose second region mines or separates ({', '.join(producers)})"
            )
    if scenario.shock.start >= scenario.horizon_months and scenario.shock.quota_cut > 0:
        raise ScenarioError(
            source, "shock.start", scenario.shock.start,
            f"a month before the horizon ({scenario.horizon_months})",
        )
    for index, event in enumerate(scenario.events):
        if event.nation not in producers:
            raise ScenarioError(
                source, f"events[{index}].nation", event.nation,
                f"a region that mines or separates in base year {scenario.base_year} ({', '.join(producers)})",
            )
        if event.kind == "ban" and event.destination == "":
            raise ScenarioError(source, f"events[{index}].destination", "", "a region for a ban")
        if event.kind == "outage" and (event.nation, event.deposit) not in mines:
            mined_there = sorted(d for n, d in mines if n == event.nation) or ["none"]
            raise ScenarioError(
                source, f"events[{index}].deposit", event.deposit,
                f"a deposit type {event.nation} mines ({', '.join(mined_there)})",
            )
        if event.kind == "export_tax" and event.rate <= 0:
            raise ScenarioError(source, f"events[{index}].rate", event.rate, "a tax rate > 0 for an export_tax")
        if event.tonnes_per_year > 0 and event.kind != "quota":
            raise ScenarioError(
                source, f"events[{index}].tonnes_per_year", event.tonnes_per_year, "no tonnage except on a quota"
            )
        if event.destination == event.nation:
            raise ScenarioError(
                source, f"events[{index}].destination", event.destination, "a region other than the nation"
            )
    substitution = scenario.substitution
    if substitution.lead_months_max < substitution.lead_months_min:
        raise ScenarioError(
            source, "substitution.lead_months_max", substitution.lead_months_max,
            f"a number >= substitution.lead_months_min ({substitution.lead_months_min})",
        )


def scenario_from_dict(table: Mapping[str, Any], source: str | Path = "<dict>") -> Scenario:
    """Validate a parsed TOML table (without ``extends``) into a Scenario."""
    top: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECTIONS:
            parts[key] = build(_SECTIONS[key], value, f"{key}.", source)
        elif key == "events":
            if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
                raise ScenarioError(source, key, value, "an array of tables [[events]]")
            parts[key] = tuple(
                build(Event, event, f"events[{index}].", source) for index, event in enumerate(value)
            )
        else:
            top[key] = value
    scenario = dataclasses.replace(build(Scenario, top, "", source), **parts)
    _check_consistency(scenario, source)
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
