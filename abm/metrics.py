"""Figures of merit computed from time series: pure numpy functions, no Mesa.

Every function takes monthly series (first axis = month) and returns plain floats or
arrays, so they apply equally to one run and to a stack of replications. ``METRICS`` is
the catalogue of the metrics a run reports: their names, units and meaning.
"""

from dataclasses import dataclass

import numpy as np

MONTHS_PER_YEAR = 12
# A price in USD/kg times tonnes gives thousands of USD.
USD_PER_T_PER_USD_PER_KG = 1000.0


def annualised_volatility(price: np.ndarray) -> float:
    """Standard deviation of monthly log returns x sqrt(12) (a fraction, 0.3 = 30 %/yr)."""
    returns = np.diff(np.log(np.asarray(price, dtype=float)))
    if returns.size < 2:
        return 0.0
    return float(returns.std(ddof=1) * np.sqrt(MONTHS_PER_YEAR))


def peak_to_base_ratio(price: np.ndarray, base: float) -> float:
    """Highest price over ``base`` (the pre-shock or initial price)."""
    return float(np.max(price) / base)


def shortfall_fraction(shortfall: np.ndarray, demand: np.ndarray) -> float:
    """Share of demand left unserved over the whole series (0 when there was no demand)."""
    total = float(np.sum(demand))
    return float(np.sum(shortfall)) / total if total > 0 else 0.0


def max_drawdown(price: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.6 = lost 60 %)."""
    price = np.asarray(price, dtype=float)
    return float(np.max(1.0 - price / np.maximum.accumulate(price)))


def service_level(shortfall: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Share of demand served each month (1 where there was no demand)."""
    shortfall, demand = np.asarray(shortfall, dtype=float), np.asarray(demand, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(demand > 0, 1.0 - shortfall / np.where(demand > 0, demand, 1.0), 1.0)


def shortfall_depth(service: np.ndarray) -> float:
    """Deepest monthly loss of service (the height of the resilience triangle)."""
    return float(np.max(1.0 - np.asarray(service)))


def resilience_loss(service: np.ndarray) -> float:
    """Area of lost service, in months at full loss (the resilience triangle of Bruneau
    et al. 2003, as used for rare earths by Sprecher et al. 2017)."""
    return float(np.sum(1.0 - np.asarray(service)))


def recovery_months(service: np.ndarray, start: int, threshold: float = 0.95) -> tuple[float, bool]:
    """Months from the first month at or after ``start`` with service below ``threshold``
    (the onset of the disruption, which may come after the shock starts) until service is
    back at or above it; (0, False) when service never fell. The second
    value says the recovery was right-censored: still below at the end of the series,
    whose remaining length is then returned."""
    below = np.nonzero(np.asarray(service)[start:] < threshold)[0]
    if below.size == 0:
        return 0.0, False
    onset = start + int(below[0])
    recovered = np.nonzero(np.asarray(service)[onset:] >= threshold)[0]
    if recovered.size == 0:
        return float(len(service) - onset), True
    return float(recovered[0]), False


def herfindahl(quantities: np.ndarray) -> float:
    """Herfindahl-Hirschman index of supply shares (1 = one supplier); 0 without supply."""
    quantities = np.asarray(quantities, dtype=float)
    total = quantities.sum()
    return float(((quantities / total) ** 2).sum()) if total > 0 else 0.0


def bootstrap_mean_ci(
    values: np.ndarray, rng: np.random.Generator, resamples: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_relative_gain(
    baseline: np.ndarray, policy: np.ndarray, rng: np.random.Generator, resamples: int = 2000, level: float = 0.95
) -> tuple[float, float, float]:
    """Resilience gained: the relative fall ``1 - mean(policy) / mean(baseline)`` over
    pairs that share their random numbers, with a bootstrap interval that resamples
    pairs (so common random numbers narrow it). NaN when the baseline mean is 0."""
    baseline, policy = np.asarray(baseline, dtype=float), np.asarray(policy, dtype=float)
    if baseline.size == 0 or baseline.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    index = rng.integers(0, baseline.size, size=(resamples, baseline.size))
    base_means, policy_means = baseline[index].mean(axis=1), policy[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gains = 1.0 - policy_means / base_means
    gains = gains[np.isfinite(gains)]
    tail = (1.0 - level) / 2.0
    return (
        float(1.0 - policy.mean() / baseline.mean()),
        float(np.quantile(gains, tail)),
        float(np.quantile(gains, 1.0 - tail)),
    )


# ------------------------------------------------------------------ the catalogue of run metrics
# Every metric a run reports (``abm.run.run_metrics``) is named by one grammar:
#     <quantity>_<unit>[_<element, stage or lever>]
# with the unit token from UNITS and the suffix an element (Nd ...), a stage of the chain
# (from STAGES) or a policy lever. The catalogue below is the only place a metric is named:
# run_metrics, abm.outcome_names(), the EMA outcome declarations and the report's labels
# all derive from it.
UNITS: dict[str, str] = {
    "t": "tonnes of rare earth oxide",
    "tproduct": "tonnes of product as sold (t of magnets, of oxide ...), not of its oxide content",
    "tpy": "tonnes of rare earth oxide a year (capacity)",
    "tproductpy": "tonnes of product a year (capacity; separation: t REO of concentrate it can take)",
    "usd": "US dollars",
    "months": "months",
    "fraction": "a share, 0-1 (volatility: per year)",
    "ratio": "a ratio of two prices",
    "index": "a dimensionless index, 0-1",
    "count": "a number (of suppliers: fractional, an effective number; of events)",
    "flag": "1 for yes, 0 for no",
}
# What a suffix names: one value per element (Nd, Pr ...), per stage or per policy lever.
PER = ("element", "stage", "lever")
# The stages a per-stage metric comes for, in chain order: what importers' buyers buy
# (concentrate goes to the few separation plants, so it has no per-stage metric).
STAGES = ("oxide", "metal", "magnet")


@dataclass(frozen=True)
class Metric:
    """One entry of the catalogue: ``quantity`` and ``unit`` make the name; ``per`` says
    whether it comes per element, per stage (of STAGES) or per lever (a suffix), ``total``
    that it also comes without a suffix (over all elements, weighted by their 2024 value,
    or all levers); ``label`` is what a table header shows."""

    quantity: str
    unit: str
    label: str
    description: str
    per: str = ""
    total: bool = True

    def __post_init__(self) -> None:
        if self.unit not in UNITS or self.per not in ("", *PER) or not (self.per or self.total):
            raise ValueError(f"metric {self.quantity}: unit {self.unit!r} or per {self.per!r} breaks the grammar")

    @property
    def base(self) -> str:
        """The name without a suffix, ``<quantity>_<unit>``."""
        return f"{self.quantity}_{self.unit}"

    def name(self, suffix: str = "") -> str:
        """The metric's name for one element, stage or lever (``suffix``), or its total (blank)."""
        return f"{self.base}_{suffix}" if suffix else self.base


_CATALOGUE = (
    Metric("world_price_volatility", "fraction", "world price volatility",
           "annualised volatility of the world price: std of monthly log returns x sqrt(12)", "element", False),
    Metric("world_price_peak", "ratio", "world price peak ratio", "highest world price over the month-0 price",
           "element", False),
    Metric("world_price_max_drawdown", "fraction", "world price max drawdown",
           "largest fall of the world price from a running peak, as a share of that peak", "element", False),
    Metric("exporter_to_world_price", "ratio", "exporter/world price",
           "mean of the dominant exporter's domestic price over the world price (NaN without a zone of its own)",
           "element", False),
    Metric("shortfall_outside_exporter", "t", "shortfall outside exporter",
           "cumulative unmet demand of importers outside the dominant exporter", "element"),
    Metric("demand_foregone_outside_exporter", "t", "demand foregone outside exporter",
           "cumulative t that importers outside the dominant exporter would have used at reference prices and did "
           "not: priced out (demand destroyed above reference prices) or not delivered (shortfall); per region and "
           "month at least 0 (abm.run._foregone)", "element"),
    Metric("shortfall_outside_exporter", "fraction", "shortfall share outside exporter",
           "share of the demand outside the dominant exporter left unmet over the run", "element", False),
    Metric("magnet_user_shortfall_outside_exporter", "tproduct", "magnet users' shortfall outside exporter",
           "cumulative t of magnets that magnet users (EVs, wind, electronics ...) outside the dominant exporter "
           "needed and did not get, months 1 to the horizon"),
    Metric("other_end_use_shortfall_outside_exporter", "tproduct", "other end uses' shortfall outside exporter",
           "cumulative t of oxide that the other end uses (catalysts, glass, alloys ...) outside the dominant "
           "exporter needed and did not get, months 1 to the horizon"),
    Metric("shortfall_depth", "fraction", "shortfall depth",
           "deepest monthly loss of service outside the exporter (total: value-weighted)", "element"),
    Metric("resilience_loss", "months", "resilience loss",
           "area of lost service outside the exporter, months at full loss (total: value-weighted)", "element"),
    Metric("recovery", "months", "recovery",
           "months from the first month below 95 % service at or after the shock's start until service is back",
           "element"),
    Metric("recovery_censored", "flag", "recovery censored",
           "1 when service had not recovered by the horizon (recovery is then right-censored)", "element"),
    Metric("supplier_hhi", "index", "supplier HHI",
           "Herfindahl index of the origins of supply to importers outside the exporter", "element", False),
    Metric("effective_suppliers", "count", "effective suppliers", "1 / supplier HHI (0 without supply)",
           "element", False),
    Metric("supply_from_exporter", "fraction", "supply from exporter",
           "share of the supply to importers outside the exporter that came from the exporter", "element", False),
    Metric("supply_made_in_exporter", "fraction", "supply made in exporter",
           "share of the t of a stage's products that the buyers (plants and end users) of the importing regions "
           "outside the dominant exporter received over the run that was made in the exporter, re-exports traced "
           "to their maker; months, products and regions weighted by what each region received "
           "(abm.run.received_by_origin); receipts of untraced origin count in the total; NaN when "
           "they received none", "stage", False),
    Metric("new_capacity_outside_exporter", "tproductpy", "new capacity outside exporter",
           "t a year of a stage's capacity (separation: t REO of concentrate it can take) that private "
           "investment (abm.investment) has running outside the dominant exporter at the horizon", "stage", False),
    Metric("new_mine_capacity_outside_exporter", "tpy", "new mine capacity outside exporter",
           "t REO a year of mine capacity that private investment has running outside the dominant exporter at "
           "the horizon"),
    Metric("unserved_value", "usd", "unserved value", "value at 2024 prices of the shortfall outside the exporter"),
    Metric("foregone_value", "usd", "foregone value",
           "value at 2024 prices of the demand foregone outside the exporter (priced out or not delivered)"),
    Metric("mean_tension", "index", "mean tension", "mean bilateral tension over pairs and months"),
    Metric("policy_cost", "usd", "policy cost", "what the policy levers cost over the run (per lever: that lever)",
           "lever"),
    Metric("deal_share", "fraction", "guaranteed share",
           "mean over months 1 to the horizon of the share of the negotiating party's need of the element that a "
           "negotiated deal guaranteed (abm.negotiation; 0 without [negotiation])", "element", False),
    Metric("deal", "months", "months under a deal", "months a negotiated deal was in force"),
    Metric("deal_breaks", "count", "deal breaks",
           "negotiated deals broken before their term because one side's value of no deal overtook the deal's"),
    Metric("deal_transfer", "usd", "deal transfer",
           "what the negotiating party paid for its deals (the concessions): each month under a deal, its "
           "transfer spread over the months of its horizon"),
)
METRICS: dict[str, Metric] = {metric.base: metric for metric in _CATALOGUE}


def metric_names(elements: tuple[str, ...], levers: tuple[str, ...]) -> list[str]:
    """Every metric a run with these elements and levers reports, in a stable order: the
    per-element metrics element by element, the per-stage metrics stage by stage (STAGES),
    then each total followed by its per-lever values."""
    names = [m.name(e) for e in elements for m in METRICS.values() if m.per == "element"]
    names += [m.name(s) for s in STAGES for m in METRICS.values() if m.per == "stage"]
    for metric in METRICS.values():
        if metric.total:
            names.append(metric.name())
        if metric.per == "lever":
            names += [metric.name(lever) for lever in levers]
    return names


def parse_metric(name: str) -> tuple[Metric, str]:
    """The catalogue entry of a metric name and its suffix (element, stage, lever or blank);
    KeyError for a name outside the catalogue."""
    for base in sorted(METRICS, key=len, reverse=True):  # the longest base that matches
        if name == base or name.startswith(f"{base}_"):
            return METRICS[base], name.removeprefix(base).removeprefix("_")
    raise KeyError(name)


def metric_label(name: str) -> str:
    """A table header for a metric, e.g. ``world price volatility Dy (fraction)``."""
    metric, suffix = parse_metric(name)
    return f"{metric.label}{' ' + suffix if suffix else ''} ({metric.unit})"
