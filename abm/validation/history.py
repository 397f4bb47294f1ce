"""The observed record of the 2010-2014 crisis: validation targets and price points.

Both tables live in ``abm/data/history/`` with a source on every row. A target names
what to measure (``kind``), on which element, over which months, and the observed
value; ``bound = lower`` marks an observation that only bounds the truth from below
(a peak read off sparse price points can only understate the real peak).
"""

from dataclasses import dataclass
from functools import cache

from abm.data import load_calibration, read_table

TARGET_KINDS = (
    "peak_months_after_start", "basket_peak_ratio", "peak_ratio", "quota_fill", "export_to_domestic", "price_ratio",
)
BOUNDS = ("value", "lower")
ZONES = ("export", "domestic")


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    element: str  # "all" for a target over every element
    start: str  # YYYY-MM
    end: str  # YYYY-MM
    observed: float
    bound: str
    unit: str
    source: str


@dataclass(frozen=True)
class ObservedPrice:
    date: str  # YYYY-MM
    element: str
    zone: str  # export (FOB China) or domestic (inside China)
    price: float  # USD/kg
    low: float | None
    high: float | None
    source: str


def _optional(text: str) -> float | None:
    return float(text) if text.strip() else None


# Kinds measured over every element together; the others name one element.
WHOLE_MARKET_KINDS = ("basket_peak_ratio", "quota_fill")


@cache
def load_targets() -> tuple[Target, ...]:
    """The observed targets, checked: a known kind and bound, and an element where the
    kind needs one (``all`` where it does not)."""
    elements = load_calibration().elements
    targets = []
    for row in read_table("history/targets.csv"):
        if row["kind"] not in TARGET_KINDS or row["bound"] not in BOUNDS:
            raise ValueError(f"history/targets.csv: {row['target']}: unknown kind {row['kind']!r} or bound {row['bound']!r}")
        expected = ("all",) if row["kind"] in WHOLE_MARKET_KINDS else elements
        if row["element"] not in expected:
            raise ValueError(f"history/targets.csv: {row['target']}: element {row['element']!r}, expected one of {expected}")
        targets.append(
            Target(
                row["target"], row["kind"], row["element"], row["start"], row["end"], float(row["observed"]),
                row["bound"], row["unit"], row["source"],
            )
        )
    return tuple(targets)


@cache
def load_observed_prices() -> tuple[ObservedPrice, ...]:
    """The observed price points (export and domestic zones), with their ranges."""
    prices = []
    for row in read_table("history/observed_prices.csv"):
        if row["zone"] not in ZONES:
            raise ValueError(f"history/observed_prices.csv: unknown zone {row['zone']!r}")
        prices.append(
            ObservedPrice(
                row["date"], row["element"], row["zone"], float(row["price_usd_per_kg"]),
                _optional(row["low"]), _optional(row["high"]), row["source"],
            )
        )
    return tuple(prices)
