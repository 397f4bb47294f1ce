"""Typed, validated scenarios loaded from TOML.

A scenario is data, not code: an analyst writes a TOML file, this module turns it into
frozen dataclasses or refuses it with one line that names the file, the key, the value
and what was expected. Defaults come from ``abm/data/parameters.csv`` so every number
has its source in one place; a file may ``extends = "other.toml"`` to state only what
it changes (tables merge key by key, everything else replaces).
"""

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from abm.data import BASE_YEARS, DEFAULT_BASE_YEAR, load_calibration
from abm.chain import COVERED_SHARE
from abm.domestic_policy import DomesticPolicy
from abm.negotiation import Negotiation
from abm.data.chain import STAGES, load_supply_chain
from abm.levers import (
    LEVER_KEYWORDS, LEVER_SECTIONS, Agreement, CapitalGrant, Contracts, DomesticMining, Partnership, PriceFloor,
    Recycling, Refining, Stockpile, Substitution,
)
from abm.schema import (
    DEPOSIT, ELEMENT_LIST, ELEMENTS, MONTHS, NON_NEGATIVE, NOT_SHOWN, PRODUCER, REGION, REGION_LIST, REGIONS, SHARE,
    TONNES_PER_YEAR, USD, ScenarioError, at_most, between, build, checked, csv_default, members, months_from, one_of,
    optional,
    plain_name, spec,
)

__all__ = ["Event", "InvestmentParameters", "MarketParameters", "Scenario", "ScenarioError", "Shock", "TensionParameters", "load_scenario"]

EVENT_KINDS = ("quota", "ban", "outage", "export_tax", "licence")
# The keys every event has, and those only some kinds use (abm.policy.export_rules).
EVENT_COMMON_KEYS = ("kind", "nation", "start", "months")
EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "quota": ("cut", "tonnes_per_year", "elements", "destination", "notice_months", "restrict_re_export"),
    "ban": ("destination", "elements", "notice_months", "restrict_re_export"),
    "outage": ("cut", "deposit"),
    "export_tax": ("rate", "elements", "notice_months"),
    "licence": ("approval_share", "delay_months", "elements", "stages", "destination", "general_licence",
                "notice_months", "restrict_re_export", "denied_end_uses"),
}
_EVENT_KEY_NOUNS = {
    "cut": "cut", "tonnes_per_year": "tonnage", "elements": "element list", "destination": "destination",
    "deposit": "deposit", "rate": "tax rate", "approval_share": "approval share", "delay_months": "processing delay",
    "stages": "product stage list", "notice_months": "notice", "general_licence": "general licence",
    "restrict_re_export": "re-export restriction", "denied_end_uses": "denied end-use list",
}
# The product stages a licence may cover, and its default scope: China's April 2025
# licences cover oxides, metals, alloys and magnets (facts.md).
LICENSED_STAGES = STAGES
MAX_LICENCE_DELAY_MONTHS = 12
# The end-use classes a licence may deny: the magnet end uses of abm/data/end_uses.csv
# (China denied military end users from October 2025; facts.md).
END_USES = load_supply_chain().end_uses


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

    target_cover_months: float = csv_default("market", "target_cover_months", months_from(1e-12))
    holdback: float = csv_default("market", "holdback", between(1e-3, 100.0))
    choke_ratio: float = csv_default("market", "choke_ratio", between(1.0 + 1e-6, 1e3))
    backstop_ratio: float = csv_default("market", "backstop_ratio", between(1.0, 1e6))
    short_run_elasticity: float = csv_default("market", "short_run_elasticity", at_most(0.0))
    long_run_elasticity: float = csv_default("market", "long_run_elasticity", at_most(0.0))
    price_memory_months: float = csv_default("market", "price_memory_months", months_from(1.0))
    supply_elasticity: float = csv_default("market", "supply_elasticity", NON_NEGATIVE)
    demand_volatility: float = csv_default("market", "demand_volatility", NON_NEGATIVE)
    inventory_months: float = csv_default("market", "inventory_months", MONTHS)
    restock_months: float = csv_default("market", "restock_months", months_from(1.0))
    hoarding_response: float = csv_default("market", "hoarding_response", NON_NEGATIVE)
    separation_yield: float = csv_default("market", "separation_yield", between(1e-6, 1.0))
    swarf_recovery: float = csv_default("market", "swarf_recovery", SHARE)
    collection_rate: float = csv_default("market", "collection_rate", SHARE)
    smuggling_share: float = csv_default("market", "smuggling_share", SHARE)
    capacity_growth_per_year: float = csv_default("market", "capacity_growth_per_year", between(-0.5, 1.0))

    # Version 1 keys the supply chain v2 replaced, and what replaced them (README).
    RETIRED: ClassVar[dict[str, str]] = dict.fromkeys(
        ("price_adjustment", "trend_months", "min_price_ratio", "arbitrage_months"),
        "no such key since version 2: every product's market clears at a price each month "
        "(market.holdback and market.choke_ratio set how fast prices move, the cost floor of abm/data/stages.csv "
        "how low they go)",
    )


@dataclass(frozen=True)
class InvestmentParameters:
    """Private investment in new mines and plants (``abm.investment``): investors commit
    where the price they expect exceeds full cost (cash cost plus the capex annuity at
    ``hurdle_rate`` over ``life_years``), build for the stage's lead time
    (abm/data/stages.csv) and abandon a project after ``abandon_months`` months in
    which the price covers neither its cash cost nor the capex still to spend. Mines'
    and separation plants' capex is ``domestic_mining.capex_usd_per_t_per_year`` and
    ``refining.capex_usd_per_t_per_year`` (one source for private and public builds)."""

    enabled: bool = True
    hurdle_rate: float = csv_default("investment", "hurdle_rate", between(1e-6, 1.0))
    life_years: float = csv_default("investment", "life_years", between(1.0, 100.0))
    expectation_months: float = csv_default("investment", "expectation_months", months_from(1.0))
    response: float = csv_default("investment", "response", between(0.0, 100.0))
    max_share_per_year: float = csv_default("investment", "max_share_per_year", SHARE)
    abandon_months: int = csv_default("investment", "abandon_months", months_from(1))
    min_utilisation: float = csv_default("investment", "min_utilisation", SHARE)
    metal_capex_usd_per_t_per_year: float = csv_default("investment", "metal_capex_usd_per_t_per_year", USD)
    magnet_capex_usd_per_t_per_year: float = csv_default("investment", "magnet_capex_usd_per_t_per_year", USD)


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
    announcement_jump: float = csv_default("tension", "announcement_jump", SHARE)

    @cached_property
    def parsed_pairs(self) -> tuple[tuple[str, str], ...]:
        """Each pair as (partner, restricting exporter), e.g. ("US", "CN")."""
        return tuple(tuple(pair.split("-")) for pair in self.pairs)


@dataclass(frozen=True)
class Shock:
    """The headline experiment: the exporter removes ``quota_cut`` of its exports."""

    exporter: str = spec(PRODUCER, default="CN")
    quota_cut: float = csv_default("shock", "quota_cut", SHARE)
    start: int = csv_default("shock", "start", MONTHS)
    months: int = csv_default("shock", "months", MONTHS)
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=ELEMENTS)
    notice_months: int = spec(MONTHS, default=0)


@dataclass(frozen=True)
class Event:
    """A scripted event from month ``start`` for ``months`` months, by ``nation``:
    ``quota`` withholds ``cut`` of its exports of ``elements`` or, when
    ``tonnes_per_year`` is set, caps its exports of ``elements`` together at that many
    tonnes of REO a year (a historical quota in tonnes, as China's 2009-2014 quotas);
    ``ban`` stops exports of ``elements`` to ``destination``; ``outage`` takes ``cut`` of
    the output of its mines of type ``deposit`` (a disaster, a strike, a border
    closure); ``export_tax`` levies ``rate`` (ad valorem) on its exports of ``elements``;
    ``licence`` makes its exports of products of ``stages`` carrying ``elements`` wait
    ``delay_months`` for a licence, of which ``approval_share`` is granted (to
    ``destination`` only if set; never to the ``general_licence`` destinations; never
    to the ``denied_end_uses``, magnet end uses such as defence, in them); a
    quota with a ``destination`` withholds ``cut`` of the exports to it only.
    ``notice_months``: a restriction is announced that many months before ``start``
    (tension rises then, and importers stock up). ``restrict_re_export`` (a ban, a
    licence or a quota that spares some destinations): goods of the nation's origin
    that it restricts may not be re-exported by third countries to the destinations
    it restricts (China's rules of October 2025), so those destinations get only its
    licensed or quota shipments and other origins' goods."""

    kind: str = spec(one_of(EVENT_KINDS, "an event kind"))
    nation: str = spec(PRODUCER)
    start: int = spec(MONTHS)
    months: int = spec(months_from(1))
    cut: float = spec(SHARE, default=1.0)
    destination: str = spec(optional(REGION), default="")
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=ELEMENTS)
    deposit: str = spec(optional(DEPOSIT), default="")
    tonnes_per_year: float = spec(TONNES_PER_YEAR, default=0.0)
    rate: float = spec(between(0.0, 10.0), default=0.0)
    approval_share: float = spec(SHARE, default=0.0)
    delay_months: int = spec(between(0, MAX_LICENCE_DELAY_MONTHS), default=2)
    stages: tuple[str, ...] = spec(members(LICENSED_STAGES, "product stages"), default=("oxide", "metal", "magnet"))
    general_licence: tuple[str, ...] = spec(REGION_LIST, default=())
    denied_end_uses: tuple[str, ...] = spec(members(END_USES, "magnet end uses"), default=())
    notice_months: int = spec(MONTHS, default=0)
    restrict_re_export: bool = False


@dataclass(frozen=True)
class Scenario:
    """Everything one run needs besides its seed."""

    name: str = spec(plain_name, default="baseline")
    description: str = ""
    base_year: int = spec(
        lambda v: None if v in BASE_YEARS else f"a base year with a calibration in abm/data: {BASE_YEARS}",
        default=DEFAULT_BASE_YEAR,
    )
    start_year: int = spec(between(1900, 2200), default=2025)
    horizon_months: int = spec(months_from(1), default=240)
    market: MarketParameters = field(default_factory=MarketParameters)
    investment: InvestmentParameters = field(default_factory=InvestmentParameters)
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
    capital_grant: CapitalGrant = field(default_factory=CapitalGrant)
    domestic_policy: DomesticPolicy = field(default_factory=DomesticPolicy)
    negotiation: Negotiation = field(default_factory=Negotiation)

    def with_overrides(self, source: str = "keyword", **overrides: Any) -> "Scenario":
        """A copy with model keywords applied (``quota_cut``, ``stockpile_months``, ...),
        validated exactly as the same keys in a file would be; None keeps a value."""
        return self.with_settings({k: v for k, v in overrides.items() if v is not None}, source)

    def with_settings(self, settings: Mapping[str, Any], source: str | Path = "keyword") -> "Scenario":
        """A copy with settings applied, each named by a model keyword (``quota_cut``), by
        its place in a scenario file (``market.short_run_elasticity``) or by an event's
        index and key (``events[0].approval_share``): what an experiment's factors and
        policies set."""
        scenario = self
        for name, value in settings.items():
            section, key = _setting_path(name, value, source)
            if section is None:
                scenario = dataclasses.replace(scenario, **{key: checked(Scenario, key, value, key, source)})
            elif section == "events":
                scenario = _with_event_setting(scenario, name, key, value, source)
            else:
                part = getattr(scenario, section)
                value = checked(type(part), key, value, f"{section}.{key}", source)
                scenario = dataclasses.replace(scenario, **{section: dataclasses.replace(part, **{key: value})})
        _check_consistency(scenario, source)
        return scenario


def _event_at(scenario: Scenario, name: str, source: str | Path) -> tuple[int, str]:
    """(index, key) of a setting ``events[i].key`` naming a key its event's kind uses."""
    match = _EVENT_SETTING.fullmatch(name)
    index, key = int(match.group(1)), match.group(2)
    if index >= len(scenario.events):
        raise ScenarioError(source, name, NOT_SHOWN, f"an event index below {len(scenario.events)} (the scenario's events)")
    kind = scenario.events[index].kind
    if key not in EVENT_COMMON_KEYS[1:] + EVENT_KEYS[kind]:
        raise ScenarioError(source, name, NOT_SHOWN, f"a key {_article(kind)} uses ({', '.join(EVENT_KEYS[kind])})")
    return index, key


def _with_event_setting(scenario: Scenario, name: str, key: str, value: Any, source: str | Path) -> Scenario:
    index, key = _event_at(scenario, name, source)
    event = dataclasses.replace(scenario.events[index], **{key: checked(Event, key, value, name, source)})
    return dataclasses.replace(scenario, events=scenario.events[:index] + (event,) + scenario.events[index + 1:])


def setting_type(name: str) -> type:
    """The Python type of a setting (a model keyword, a ``section.key`` or ``events[i].key``)."""
    section, key = _setting_path(name, None, "setting")
    owner = {None: Scenario, "events": Event}.get(section) or _SECTIONS[section]
    return next(f.type for f in dataclasses.fields(owner) if f.name == key)


def setting_value(scenario: "Scenario", name: str) -> Any:
    """The value ``scenario`` holds for a setting (a model keyword, a ``section.key`` or ``events[i].key``)."""
    section, key = _setting_path(name, None, "setting")
    if section == "events":
        index, key = _event_at(scenario, name, "setting")
        return getattr(scenario.events[index], key)
    return getattr(scenario if section is None else getattr(scenario, section), key)


_EVENT_SETTING = re.compile(r"events\[(\d+)\]\.(\w+)")


def _setting_path(name: str, value: Any, source: str | Path) -> tuple[str | None, str]:
    if name in KEYWORD_PATHS:
        return KEYWORD_PATHS[name]
    event = _EVENT_SETTING.fullmatch(name)
    if event and event.group(2) in {f.name for f in dataclasses.fields(Event)}:
        return "events", event.group(2)
    section, _, key = name.partition(".")
    if section in _SECTIONS and key in {f.name for f in dataclasses.fields(_SECTIONS[section])}:
        return section, key
    retired = getattr(_SECTIONS.get(section), "RETIRED", {})
    if key in retired:
        raise ScenarioError(source, name, NOT_SHOWN, retired[key])
    raise ScenarioError(  # an unknown key's value is never shown: it could be a secret
        source, name, NOT_SHOWN,
        f"a model keyword ({', '.join(KEYWORD_PATHS)}), a scenario key like market.holdback or an event key like events[0].cut",
    )


# Model keywords (as used by mesa.batch_run and SolaraViz) and where they live in a scenario.
KEYWORD_PATHS: dict[str, tuple[str | None, str]] = {
    "horizon_months": (None, "horizon_months"),
    "quota_cut": ("shock", "quota_cut"),
    "shock_start": ("shock", "start"),
    "shock_months": ("shock", "months"),
    "tension_volatility": ("tension", "volatility"),
    **LEVER_KEYWORDS,
    "negotiation": ("negotiation", "enabled"),
}
_SECTIONS: dict[str, type] = {
    "market": MarketParameters, "investment": InvestmentParameters, "tension": TensionParameters, "shock": Shock,
    **LEVER_SECTIONS, "domestic_policy": DomesticPolicy, "negotiation": Negotiation,
}


def _check_fields(scenario: Scenario, source: str | Path) -> None:
    """Every field's own check, in every section (events apart)."""
    for section_name, section in [(None, scenario), *((n, getattr(scenario, n)) for n in _SECTIONS)]:
        for spec_ in dataclasses.fields(section):
            if section_name is None and spec_.name in _SECTIONS or spec_.name == "events":
                continue
            key = spec_.name if section_name is None else f"{section_name}.{spec_.name}"
            checked(type(section), spec_.name, getattr(section, spec_.name), key, source)


def _check_consistency(scenario: Scenario, source: str | Path) -> None:
    """Every field's own check and the rules across keys, for files and for scenarios
    built in Python alike (the model validates every scenario it is given through
    ``with_overrides``)."""
    _check_fields(scenario, source)
    for index, event in enumerate(scenario.events):
        for spec_ in dataclasses.fields(event):
            checked(Event, spec_.name, getattr(event, spec_.name), f"events[{index}].{spec_.name}", source)
        _check_event_keys(event, _set_keys(event), f"events[{index}].", source)
    for lever in ("refining", "domestic_mining"):
        region = getattr(scenario, lever).region
        if getattr(scenario, lever).tonnes_per_year > 0 and region == scenario.shock.exporter:
            raise ScenarioError(source, f"{lever}.region", region, f"a region other than the exporter {region}")
    calibration = load_calibration(scenario.base_year)
    producers = calibration.producers
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
    _check_shock(scenario, source)
    _check_domestic_policy(scenario, source)
    _check_negotiation(scenario, source)
    for index, event in enumerate(scenario.events):
        _check_event(scenario, event, f"events[{index}].", source)
    substitution = scenario.substitution
    if substitution.lead_months_max < substitution.lead_months_min:
        raise ScenarioError(
            source, "substitution.lead_months_max", substitution.lead_months_max,
            f"a number >= substitution.lead_months_min ({substitution.lead_months_min})",
        )


def _check_domestic_policy(scenario: Scenario, source: str | Path) -> None:
    """A domestic supply policy acts on a nation that mines and separates, with a band."""
    policy = scenario.domestic_policy
    if not policy.enabled:
        return
    mining = {n for n, _, _ in load_calibration(scenario.base_year).mines}
    if policy.nation not in mining or policy.nation not in separating_regions(scenario):
        raise ScenarioError(source, "domestic_policy.nation", policy.nation,
                            f"a region that mines and separates in base year {scenario.base_year} "
                            f"({', '.join(r for r in separating_regions(scenario) if r in mining)})")
    if not policy.elements:
        raise ScenarioError(source, "domestic_policy.elements", [], "at least one element for a domestic policy")
    if policy.band_high <= policy.band_low:
        raise ScenarioError(source, "domestic_policy.band_high", policy.band_high,
                            f"a number > domestic_policy.band_low ({policy.band_low:g})")


def _check_negotiation(scenario: Scenario, source: str | Path) -> None:
    """A negotiating party is one or more distinct regions with end users other than the exporter, at
    a positive mean tension (its leverage is scaled by tension over the mean), and the
    scripted agreement is off (the negotiation decides what that switch scripts)."""
    talks = scenario.negotiation
    if not talks.enabled:
        return
    exporter = scenario.shock.exporter
    calibration, chain = load_calibration(scenario.base_year), load_supply_chain(scenario.base_year)
    users = (calibration.region_share.sum(axis=0) > 0) | (chain.magnet_use_share.sum(axis=0) > 0)
    importing = [r for r, has in zip(calibration.regions, users, strict=True) if has and r != exporter]
    distinct = len(set(talks.importers)) == len(talks.importers)
    if not talks.importers or not distinct or not set(talks.importers) <= set(importing):
        raise ScenarioError(source, "negotiation.importers", list(talks.importers),
                            f"one or more distinct regions with end users in base year {scenario.base_year}, "
                            f"the exporter {exporter} apart ({', '.join(importing)})")
    if not talks.elements:
        raise ScenarioError(source, "negotiation.elements", [], "at least one element for a deal")
    if scenario.tension.mean <= 0:
        raise ScenarioError(source, "tension.mean", scenario.tension.mean,
                            "a number > 0 with [negotiation] on (the exporter's leverage is scaled by tension over it)")
    if scenario.agreement.enabled:
        raise ScenarioError(source, "agreement.enabled", True,
                            "false with [negotiation] on (the negotiation decides whether a deal holds)")


def separating_regions(scenario: Scenario) -> tuple[str, ...]:
    """Regions with separation capacity in the scenario's world (its base year's refiners
    and refinery projects, and the refining lever's region when it builds): only they
    export separated oxides, which quotas and export taxes act on."""
    active = set(load_calibration(scenario.base_year).separators)
    if scenario.refining.tonnes_per_year > 0:
        active.add(scenario.refining.region)
    return tuple(r for r in REGIONS if r in active)


def exporting_stages(scenario: Scenario, nation: str) -> tuple[str, ...]:
    """The product stages ``nation`` makes in the scenario's world, so may export: its
    mines' concentrate, its separation's oxides, its metal and magnet plants' output (a
    plant project or the refining lever included)."""
    calibration = load_calibration(scenario.base_year)
    chain = load_supply_chain(scenario.base_year)
    made = {stage for stage, where, _ in chain.plants if where == nation}
    made |= {project.stage for project in chain.plant_projects if project.nation == nation}
    if any(n == nation for n, _, _ in calibration.mines):
        made.add("concentrate")
    if nation in separating_regions(scenario):
        made.add("oxide")
    return tuple(stage for stage in LICENSED_STAGES if stage in made)


def _licensed_products(scenario: Scenario, event: Event) -> tuple[str, ...]:
    """The products a licence covers: those of its stages carrying at least
    ``COVERED_SHARE`` of their REO as its elements (for concentrates, of the deposits its
    nation mines), as ``abm.trade.element_reach`` reaches them."""
    chain = load_supply_chain(scenario.base_year)
    mined = {d for n, d, _ in load_calibration(scenario.base_year).mines if n == event.nation}
    columns = [ELEMENTS.index(e) for e in event.elements]
    covered = []
    for p, (product, stage) in enumerate(zip(chain.products, chain.stage, strict=True)):
        total = chain.content[p].sum()
        carries = total > 0 and chain.content[p, columns].sum() / total >= COVERED_SHARE
        if carries and stage in event.stages and (stage != "concentrate" or product.removeprefix("conc_") in mined):
            covered.append(product)
    return tuple(covered)


def _no_separated_exports(scenario: Scenario, nation: str) -> str:
    return (
        f"a nation with separated exports to cap: {nation} only mines in base year {scenario.base_year} "
        f"(regions that separate: {', '.join(separating_regions(scenario))}; a ban does act on its concentrate)"
    )


def _before_the_end(scenario: Scenario) -> str:
    return f"a month before the end of the run (horizon_months = {scenario.horizon_months})"


def _check_shock(scenario: Scenario, source: str | Path) -> None:
    """A shock that cuts must start within the horizon and hit separated exports (a
    zero-month shock stays allowed: it is the no-shock level of a duration sweep)."""
    shock = scenario.shock
    if shock.quota_cut <= 0 or shock.months == 0:
        if shock.notice_months > 0:
            raise ScenarioError(source, "shock.notice_months", shock.notice_months,
                                "no notice on a shock without a quota_cut or months (there is nothing to announce)")
        return
    if shock.notice_months > shock.start:
        raise ScenarioError(source, "shock.notice_months", shock.notice_months,
                            f"at most shock.start ({shock.start}): an announcement within the run")
    if shock.start >= scenario.horizon_months:
        raise ScenarioError(source, "shock.start", shock.start, _before_the_end(scenario))
    if not shock.elements:
        raise ScenarioError(source, "shock.elements", [], "at least one element for a shock with a quota_cut > 0")
    if shock.exporter not in separating_regions(scenario):
        raise ScenarioError(source, "shock.exporter", shock.exporter, _no_separated_exports(scenario, shock.exporter))


def _set_keys(event: Event) -> set[str]:
    """The keys of an event built in Python that differ from their defaults (what a file
    would have had to state)."""
    return {
        f.name for f in dataclasses.fields(event)
        if f.default is dataclasses.MISSING or getattr(event, f.name) != f.default
    }


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _check_event_keys(event: Event, given: set[str], where: str, source: str | Path) -> None:
    """Refuse a key the event's kind does not use (``given``: the keys the file states),
    since it could never change the run."""
    if event.kind == "quota" and {"destination", "tonnes_per_year"} <= given:
        raise ScenarioError(
            source, where + "destination", event.destination,
            "no destination on a quota in tonnes (a destination quota is a cut of the exports to it)",
        )
    if event.kind == "licence" and "destination" in given and event.general_licence:
        raise ScenarioError(source, where + "general_licence", list(event.general_licence),
                            "either a destination or general licences on a licence, not both")
    used = EVENT_KEYS[event.kind]
    for spec_ in dataclasses.fields(event):
        key = spec_.name
        if key in given and key not in EVENT_COMMON_KEYS and key not in used:
            kinds = " or ".join(_article(k) for k, keys in EVENT_KEYS.items() if key in keys)
            raise ScenarioError(
                source, where + key, getattr(event, key),
                f"no {_EVENT_KEY_NOUNS[key]} except on {kinds} ({key} does nothing on {_article(event.kind)})",
            )
    if event.kind == "quota" and {"cut", "tonnes_per_year"} <= given:
        raise ScenarioError(
            source, where + "tonnes_per_year", event.tonnes_per_year, "either cut or tonnes_per_year on a quota, not both"
        )


def _check_event(scenario: Scenario, event: Event, where: str, source: str | Path) -> None:
    """The rules across an event's keys and the scenario: it acts within the horizon, on
    something its nation has (mines of its deposit, separated exports, a destination)."""
    calibration = load_calibration(scenario.base_year)
    if event.nation not in calibration.producers:
        raise ScenarioError(
            source, where + "nation", event.nation,
            f"a region that mines or separates in base year {scenario.base_year} ({', '.join(calibration.producers)})",
        )
    if "elements" in EVENT_KEYS[event.kind] and not event.elements:
        raise ScenarioError(source, where + "elements", [], f"at least one element for {_article(event.kind)}")
    if event.kind in ("quota", "export_tax") and event.nation not in separating_regions(scenario):
        raise ScenarioError(source, where + "nation", event.nation, _no_separated_exports(scenario, event.nation))
    if event.kind in ("quota", "outage") and event.tonnes_per_year == 0 and event.cut <= 0:
        raise ScenarioError(source, where + "cut", event.cut, f"a cut > 0 for {_article(event.kind)}")
    if event.kind == "ban" and event.destination == "":
        raise ScenarioError(source, where + "destination", "", "a region for a ban")
    if event.destination == event.nation:
        raise ScenarioError(source, where + "destination", event.destination, "a region other than the nation")
    mines = {(n, d) for n, d, _ in calibration.mines}
    if event.kind == "outage" and (event.nation, event.deposit) not in mines:
        mined_there = sorted(d for n, d in mines if n == event.nation) or ["none"]
        raise ScenarioError(
            source, where + "deposit", event.deposit, f"a deposit type {event.nation} mines ({', '.join(mined_there)})"
        )
    if event.kind == "export_tax" and event.rate <= 0:
        raise ScenarioError(source, where + "rate", event.rate, "a tax rate > 0 for an export_tax")
    _check_notice(scenario, event, where, source)
    if event.restrict_re_export and not (event.destination or event.general_licence):
        raise ScenarioError(source, where + "restrict_re_export", True,
                            f"a destination{' or general licences' if event.kind == 'licence' else ''} on "
                            f"{_article(event.kind)} that restricts re-exports (on every destination alike "
                            "there is no destination left to re-export to)")
    if event.kind == "licence":
        _check_licence(scenario, event, where, source)


def continued_licence(licence: Event, events: tuple[Event, ...]) -> Event | None:
    """The licence of the same nation, on some of the same elements, in force the month
    before ``licence`` starts: the one whose queue it takes over (None if it starts afresh)."""
    return next((e for e in events if e is not licence and e.kind == "licence" and e.nation == licence.nation
                 and e.start < licence.start <= e.start + e.months and set(e.elements) & set(licence.elements)), None)


def _check_notice(scenario: Scenario, event: Event, where: str, source: str | Path) -> None:
    """An announcement comes within the run and reaches a tension pair."""
    if event.notice_months > event.start:
        raise ScenarioError(source, where + "notice_months", event.notice_months,
                            f"at most the event's start ({event.start}): an announcement within the run")
    partners = {a for a, x in scenario.tension.parsed_pairs if x == event.nation}
    hit = partners if not event.destination else partners & {event.destination}
    if event.kind == "licence" and not event.destination:
        hit = partners - set(event.general_licence)
    if event.notice_months > 0 and not hit:
        raise ScenarioError(source, where + "notice_months", event.notice_months,
                            f"no notice: no tension pair links {event.nation} to the destinations it hits, "
                            "so an announcement moves nothing")


def _check_licence(scenario: Scenario, event: Event, where: str, source: str | Path) -> None:
    """A licence covers stages its nation exports, and withholds something."""
    if not event.stages:
        raise ScenarioError(source, where + "stages", [], "at least one product stage for a licence")
    exported = exporting_stages(scenario, event.nation)
    idle = [stage for stage in event.stages if stage not in exported]
    if idle:
        raise ScenarioError(
            source, where + "stages", list(event.stages),
            f"product stages {event.nation} makes ({', '.join(exported) or 'none'}): it exports no {idle[0]}",
        )
    if event.nation in event.general_licence:
        raise ScenarioError(source, where + "general_licence", list(event.general_licence),
                            f"destinations other than the licensing nation {event.nation}")
    if len(set(REGIONS) - set(event.general_licence) - {event.nation}) == 0:
        raise ScenarioError(source, where + "general_licence", list(event.general_licence),
                            "some destination without a general licence (this licence covers none)")
    if not _licensed_products(scenario, event):
        raise ScenarioError(
            source, where + "elements", list(event.elements),
            f"elements carried by some product of the stages {', '.join(event.stages)} that {event.nation} exports "
            f"(at least {COVERED_SHARE:.0%} of its REO): this licence covers nothing",
        )
    if event.delay_months >= event.months and not any(continued_licence(e, scenario.events) is event
                                                          for e in scenario.events):
        raise ScenarioError(source, where + "delay_months", event.delay_months,
                            f"fewer months than the licence lasts ({event.months}): nothing would be decided, so "
                            "approval_share could never act (an embargo is a ban or a quota cut of 1)")
    chain, covered = load_supply_chain(scenario.base_year), set(_licensed_products(scenario, event))
    destinations = [event.destination] if event.destination else [
        r for r in REGIONS if r != event.nation and r not in event.general_licence]
    for use in event.denied_end_uses:
        u = chain.end_uses.index(use)
        mix = zip(chain.products, chain.grade_mix[u], strict=True)
        if not any(share > 0 and product in covered for product, share in mix):
            raise ScenarioError(source, where + "denied_end_uses", list(event.denied_end_uses),
                                f"end uses that buy a magnet grade the licence covers ({use} buys none)")
        if not any(chain.magnet_use_share[u, REGIONS.index(r)] > 0 for r in destinations):
            raise ScenarioError(source, where + "denied_end_uses", list(event.denied_end_uses),
                                f"end uses with users in the licence's destinations ({use} has none in "
                                f"{', '.join(destinations)})")
    if event.approval_share >= 1.0 and event.delay_months == 0 and not event.denied_end_uses:
        raise ScenarioError(source, where + "approval_share", event.approval_share,
                            "an approval share < 1 or a delay > 0: a licence granted at once in full withholds nothing")


def _parts(table: Mapping[str, Any], source: str | Path) -> tuple[Scenario, dict[str, Any]]:
    """A scenario of the top-level keys of one parsed table, and its built sections and
    events; every key is checked on its own here, naming ``source``."""
    top: dict[str, Any] = {}
    parts: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECTIONS:
            parts[key] = build(_SECTIONS[key], value, f"{key}.", source)
        elif key == "events":
            if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
                raise ScenarioError(source, key, value, "an array of tables [[events]]")
            parts[key] = tuple(_event(event, f"events[{index}].", source) for index, event in enumerate(value))
        else:
            top[key] = value
    return build(Scenario, top, "", source), parts


def _event(table: Mapping[str, Any], where: str, source: str | Path) -> Event:
    event = build(Event, table, where, source)
    _check_event_keys(event, set(table), where, source)
    return event


def scenario_from_dict(table: Mapping[str, Any], source: str | Path = "<dict>") -> Scenario:
    """Validate a parsed TOML table (without ``extends``) into a Scenario."""
    top, parts = _parts(table, source)
    scenario = dataclasses.replace(top, **parts)
    _check_consistency(scenario, source)
    # In a file an event after the horizon can never act; a run shortened by a keyword
    # (``horizon_months=1``) may stop before a file's later events, as it should.
    for index, event in enumerate(scenario.events):
        if event.start >= scenario.horizon_months:
            raise ScenarioError(source, f"events[{index}].start", event.start, _before_the_end(scenario))
    policy = scenario.domestic_policy
    for key in ("start", "enforcement_start"):
        if policy.enabled and getattr(policy, key) >= scenario.horizon_months:
            raise ScenarioError(source, f"domestic_policy.{key}", getattr(policy, key), _before_the_end(scenario))
    return scenario


def _merge(parent: dict[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path, source: str | Path, key: str) -> dict[str, Any]:
    """The parsed TOML file ``path``; any reason it cannot be read is a ScenarioError on
    ``source``'s ``key`` (the file itself, or the ``extends`` of the file naming it)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioError(source, key, str(path), "an existing TOML file") from None
    except IsADirectoryError:
        raise ScenarioError(source, key, str(path), "a TOML file, not a folder") from None
    except OSError as error:
        raise ScenarioError(source, key, str(path), f"a readable TOML file ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(path, "(syntax)", str(error), "well-formed TOML") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(path, "(encoding)", f"byte {error.object[error.start]:#04x} at offset {error.start}", "UTF-8 text") from None
    except RecursionError:
        raise ScenarioError(path, "(syntax)", "arrays or tables nested too deeply to read", "well-formed TOML") from None


def _read_table(path: Path, child: Path | None = None, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """File ``path`` merged over its ``extends`` parents (``child`` is the file that names
    it, ``chain`` the resolved files below it). Each file's keys are checked on their own
    first, so an error names the file that holds the key."""
    if path.resolve() in chain:
        raise ScenarioError(child, "extends", str(path), "a file that does not extend itself")
    table = read_toml(path, path if child is None else child, "file" if child is None else "extends")
    parent_name = table.pop("extends", None)
    _parts(table, path)
    if parent_name is None:
        return table
    if not isinstance(parent_name, str):
        raise ScenarioError(path, "extends", parent_name, "a path to a TOML file")
    parent = _read_table(path.parent / parent_name, path, (*chain, path.resolve()))
    return _merge(parent, table)


def load_scenario(path: str | Path) -> Scenario:
    """Read, merge (``extends``) and validate a scenario file."""
    path = Path(path)
    return scenario_from_dict(_read_table(path), source=path)
