"""Diversification and mitigation levers: their scenario sections and their pure rules.

Each lever is a TOML section (``[stockpile]``, ``[recycling]`` ...) and a keyword of
``RareEarthModel``; every lever is off by default (a zero size, or ``enabled = false``)
so the baseline and the quota shock are the no-policy arms. Defaults and their
sources are in ``abm/data/parameters.csv``; docs/levers.md explains each rule and
docs/ODD.md §7.22 what each buys.
"""

from dataclasses import dataclass

import numpy as np

from abm.data.chain import STAGES
from abm.schema import (
    DEPOSIT, ELEMENT_LIST, MAX_USD, MONTHS, NON_NEGATIVE, PRODUCER, PRODUCERS, REGION, REGION_LIST, SHARE,
    TONNES_PER_YEAR, USD, at_least, between, csv_default, members, months_from, spec,
)

PRODUCER_LIST = members(PRODUCERS, "regions that mine or separate")


@dataclass(frozen=True)
class DomesticMining:
    """New mines in ``region``: output only after permitting, a possible environmental
    review and construction, then a ramp-up; its basket is its deposit type's."""

    tonnes_per_year: float = csv_default("domestic_mining", "tonnes_per_year", TONNES_PER_YEAR)
    region: str = spec(REGION, default="US")
    deposit: str = spec(DEPOSIT, default="mountain_pass")
    permit_delay_months: int = csv_default("domestic_mining", "permit_delay_months", MONTHS)
    review_delay_probability: float = csv_default("domestic_mining", "review_delay_probability", SHARE)
    review_delay_months: int = csv_default("domestic_mining", "review_delay_months", MONTHS)
    build_months: int = csv_default("domestic_mining", "build_months", MONTHS)
    ramp_months: int = csv_default("domestic_mining", "ramp_months", MONTHS)
    capex_usd_per_t_per_year: float = csv_default("domestic_mining", "capex_usd_per_t_per_year", USD)


@dataclass(frozen=True)
class Refining:
    """New separation capacity in ``region``, outside the dominant exporter."""

    tonnes_per_year: float = csv_default("refining", "tonnes_per_year", TONNES_PER_YEAR)
    joint_venture: bool = False
    region: str = spec(REGION, default="US")
    lead_months: int = csv_default("refining", "lead_months", MONTHS)
    ramp_months: int = csv_default("refining", "ramp_months", MONTHS)
    joint_venture_saving_months: int = csv_default("refining", "joint_venture_saving_months", MONTHS)
    technology_ban: bool = True
    technology_ban_delay_months: int = csv_default("refining", "technology_ban_delay_months", MONTHS)
    capex_usd_per_t_per_year: float = csv_default("refining", "capex_usd_per_t_per_year", USD)
    joint_venture_cost_saving: float = csv_default("refining", "joint_venture_cost_saving", SHARE)


@dataclass(frozen=True)
class Partnership:
    """Offtake agreements with allied producers: importers in ``regions`` contract a further
    ``share`` of their trend need from ``partners`` (in proportion to the partners'
    separation capacity), on top of their ordinary contract book; contracts are served
    before the spot market. Partners carry their own, smaller disruption risk."""

    share: float = csv_default("partnership", "share", SHARE)
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU"))
    partners: tuple[str, ...] = spec(PRODUCER_LIST, default=("MY", "US", "EU"))
    premium: float = csv_default("partnership", "premium", NON_NEGATIVE)
    outage_probability: float = csv_default("partnership", "outage_probability", SHARE)
    outage_months: int = csv_default("partnership", "outage_months", MONTHS)
    outage_cut: float = csv_default("partnership", "outage_cut", SHARE)


@dataclass(frozen=True)
class Substitution:
    """Research toward substitutes: after an uncertain lead time, magnet makers in
    ``regions`` use less of ``elements``, by at most ``max_cut_per_year`` a year."""

    usd_per_year: float = csv_default("substitution", "usd_per_year", USD)
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU"))
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=("Nd", "Pr", "Dy", "Tb"))
    lead_months_min: int = csv_default("substitution", "lead_months_min", MONTHS)
    lead_months_max: int = csv_default("substitution", "lead_months_max", MONTHS)
    max_reduction: float = csv_default("substitution", "max_reduction", SHARE)
    spend_scale_usd_per_year: float = csv_default("substitution", "spend_scale_usd_per_year", between(1.0, MAX_USD))
    max_cut_per_year: float = csv_default("substitution", "max_cut_per_year", SHARE)


@dataclass(frozen=True)
class Recycling:
    """A programme raising end-of-life collection in ``regions`` to ``rate``, with a
    subsidy per kg of recovered oxide."""

    rate: float = csv_default("recycling", "rate", SHARE)
    subsidy_usd_per_kg: float = csv_default("recycling", "subsidy_usd_per_kg", USD)
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU"))
    collection_cost_ratio: float = csv_default("recycling", "collection_cost_ratio", at_least(1e-6))


@dataclass(frozen=True)
class Stockpile:
    """Government stocks in ``regions``: ``months`` of consumption, bought when calm,
    released on shortage or a price spike."""

    months: float = csv_default("stockpile", "months", MONTHS)
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU"))
    initial_fill: float = csv_default("stockpile", "initial_fill", SHARE)
    fill_months: int = csv_default("stockpile", "fill_months", months_from(1))
    release_months: int = csv_default("stockpile", "release_months", months_from(1))
    release_price_ratio: float = csv_default("stockpile", "release_price_ratio", at_least(1.0))
    holding_cost_per_year: float = csv_default("stockpile", "holding_cost_per_year", NON_NEGATIVE)


@dataclass(frozen=True)
class Contracts:
    """Long-term contracts: ``share`` of trend need under contract for ``months``; in
    ``regions`` no origin may hold more than ``max_origin_share`` of the book."""

    share: float = csv_default("contracts", "share", SHARE)
    months: int = csv_default("contracts", "months", months_from(1))
    max_origin_share: float = csv_default("contracts", "max_origin_share", SHARE)
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU", "RW"))
    premium: float = csv_default("contracts", "premium", NON_NEGATIVE)


@dataclass(frozen=True)
class Agreement:
    """A negotiated deal with the dominant exporter: it guarantees ``guaranteed_share`` of
    its reference exports and lowers tension with ``regions``, until tension with any of
    them passes ``breach_threshold``; then it is breached for good."""

    enabled: bool = False
    regions: tuple[str, ...] = spec(REGION_LIST, default=("US", "JP", "EU"))
    guaranteed_share: float = csv_default("agreement", "guaranteed_share", SHARE)
    tension_relief: float = csv_default("agreement", "tension_relief", SHARE)
    breach_threshold: float = csv_default("agreement", "breach_threshold", SHARE)
    breach_jump: float = csv_default("agreement", "breach_jump", SHARE)
    premium: float = csv_default("agreement", "premium", NON_NEGATIVE)


@dataclass(frozen=True)
class PriceFloor:
    """A government guarantee to a domestic producer (the 2025 US-MP Materials deal):
    when the producer's price is below ``usd_per_kg`` it is paid the difference."""

    usd_per_kg: float = csv_default("price_floor", "usd_per_kg", USD)
    region: str = spec(PRODUCER, default="US")
    elements: tuple[str, ...] = spec(ELEMENT_LIST, default=("Nd", "Pr"))
    start: int = csv_default("price_floor", "start", MONTHS)
    months: int = csv_default("price_floor", "months", MONTHS)


@dataclass(frozen=True)
class CapitalGrant:
    """A government grant to private investors (abm/investment.py): it pays ``share`` of
    the capex of the projects committed from ``start`` for ``months`` in ``region`` at the
    ``stages`` named (mines are ``concentrate``), spent over each project's build, so
    investors count only the rest of the capital charge (as the US DoD's awards to MP
    Materials for separation at Mountain Pass, 2020 and 2022; parameters.csv)."""

    share: float = csv_default("capital_grant", "share", between(0.0, 0.9))
    region: str = spec(REGION, default="US")
    stages: tuple[str, ...] = spec(members(STAGES, "product stages"), default=STAGES)
    start: int = csv_default("capital_grant", "start", MONTHS)
    months: int = csv_default("capital_grant", "months", MONTHS)


# The section of each lever in a scenario, in the order policy costs are reported.
LEVER_SECTIONS: dict[str, type] = {
    "domestic_mining": DomesticMining,
    "refining": Refining,
    "partnership": Partnership,
    "substitution": Substitution,
    "recycling": Recycling,
    "stockpile": Stockpile,
    "contracts": Contracts,
    "agreement": Agreement,
    "price_floor": PriceFloor,
    "capital_grant": CapitalGrant,
}

# Model keywords of the levers and where they live in a scenario.
LEVER_KEYWORDS: dict[str, tuple[str, str]] = {
    "domestic_mining": ("domestic_mining", "tonnes_per_year"),
    "permit_delay_months": ("domestic_mining", "permit_delay_months"),
    "refining_capacity": ("refining", "tonnes_per_year"),
    "refining_jv": ("refining", "joint_venture"),
    "partnership_share": ("partnership", "share"),
    "substitution_rd": ("substitution", "usd_per_year"),
    "recycling_rate": ("recycling", "rate"),
    "recycling_subsidy": ("recycling", "subsidy_usd_per_kg"),
    "stockpile_months": ("stockpile", "months"),
    "contract_share": ("contracts", "share"),
    "max_origin_share": ("contracts", "max_origin_share"),
    "agreement": ("agreement", "enabled"),
    "price_floor": ("price_floor", "usd_per_kg"),
    "capital_grant": ("capital_grant", "share"),
}


def ramp(month: int, online: int, ramp_months: int) -> float:
    """Share of a project's capacity running in ``month``: 0 before ``online``, then rising
    linearly to 1 over ``ramp_months`` (the first month already runs 1/ramp_months)."""
    if month < online:
        return 0.0
    return min(1.0, (month - online + 1) / max(ramp_months, 1))


def mine_online_month(lever: DomesticMining, review_delayed: bool) -> int:
    """Permitting, then (sometimes) an environmental review, then construction."""
    review = lever.review_delay_months if review_delayed else 0
    return lever.permit_delay_months + review + lever.build_months


def refinery_online_month(lever: Refining) -> int:
    """Build lead time, shortened by a joint venture's technology sharing and lengthened by
    the dominant exporter's ban on exporting separation technology (Dec 2023) unless a
    joint venture brings the know-how."""
    months = lever.lead_months
    if lever.joint_venture:
        months -= lever.joint_venture_saving_months
    elif lever.technology_ban:
        months += lever.technology_ban_delay_months
    return max(months, 0)


def capped_shares(shares: np.ndarray, cap: float) -> np.ndarray:
    """Origin shares with none above ``cap``: the excess is spread over the others in
    proportion to their shares (water filling). Shares that cannot all fit under the
    cap (fewer than 1/cap origins) are capped and the rest is left uncontracted."""
    shares = np.asarray(shares, dtype=float).copy()
    for _ in range(len(shares)):
        over = shares > cap + 1e-12
        if not over.any():
            break
        excess = float((shares[over] - cap).sum())
        shares[over] = cap
        room = (~over) & (shares > 0) & (shares < cap - 1e-12)  # an origin with no share takes none
        if not room.any():
            break
        shares[room] += excess * shares[room] / shares[room].sum()
    return np.minimum(shares, cap)


def substitution_target(lever: Substitution) -> float:
    """The intensity cut research buys: saturating in spend, at most ``max_reduction``."""
    return lever.max_reduction * (1.0 - np.exp(-lever.usd_per_year / lever.spend_scale_usd_per_year))


def collection_share(price: np.ndarray, reference_price: np.ndarray, subsidy_usd_per_kg: float,
                     cost_ratio: float) -> np.ndarray:
    """Share of the intended collection that pays: the oxide's value plus the subsidy over
    the cost of collecting and processing it (``cost_ratio`` x reference price), capped at 1.
    Collection falls when prices fall."""
    return np.clip((price + subsidy_usd_per_kg) / (cost_ratio * reference_price), 0.0, 1.0)
