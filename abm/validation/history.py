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
    "mean_ratio",
)
BOUNDS = ("value", "lower")
ZONES = ("export", "domestic")
HALVES = ("calibration", "validation")
CALIBRATION_END = "2011-06"  # the last month of the build-up: calibration targets end by then


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    element: str  # "all" for a target over every element
    zone: str  # the price zone measured: export (FOB China, the world market) or domestic (inside China)
    start: str  # YYYY-MM
    end: str  # YYYY-MM
    observed: float
    low: float  # the observed value's range in its source (both equal to observed for a point)
    high: float
    bound: str
    half: str  # calibration (observed by June 2011) or validation (observed from July 2011)
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
def load_targets(half: str | None = None) -> tuple[Target, ...]:
    """The observed targets (of one ``half``, or all), checked: a known kind, zone, bound
    and half, an element where the kind needs one (``all`` where it does not), a range
    around the observed value, and a half that matches the months: a calibration target
    ends by June 2011, a validation target after it."""
    elements = load_calibration().elements
    targets = []
    for row in read_table("history/targets.csv"):
        name = row["target"]
        if row["kind"] not in TARGET_KINDS or row["bound"] not in BOUNDS or row["zone"] not in ZONES:
            raise ValueError(
                f"history/targets.csv: {name}: unknown kind {row['kind']!r}, bound {row['bound']!r} or zone {row['zone']!r}"
            )
        expected = ("all",) if row["kind"] in WHOLE_MARKET_KINDS else elements
        if row["element"] not in expected:
            raise ValueError(f"history/targets.csv: {name}: element {row['element']!r}, expected one of {expected}")
        if row["half"] not in HALVES or (row["end"] <= CALIBRATION_END) != (row["half"] == "calibration"):
            raise ValueError(
                f"history/targets.csv: {name}: half {row['half']!r} for a target ending {row['end']}, expected "
                f"calibration (ending by {CALIBRATION_END}) or validation (ending later)"
            )
        observed = float(row["observed"])
        low, high = _optional(row["low"]), _optional(row["high"])
        low, high = observed if low is None else low, observed if high is None else high
        if not low <= observed <= high:
            raise ValueError(f"history/targets.csv: {name}: observed {observed:g} outside its range [{low:g}, {high:g}]")
        targets.append(Target(
            name, row["kind"], row["element"], row["zone"], row["start"], row["end"], observed, low, high,
            row["bound"], row["half"], row["unit"], row["source"],
        ))
    return tuple(t for t in targets if half is None or t.half == half)


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
