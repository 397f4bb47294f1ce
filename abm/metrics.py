"""Figures of merit computed from time series: pure numpy functions, no Mesa.

Every function takes monthly series (first axis = month) and returns plain floats or
arrays, so they apply equally to one run and to a stack of replications.
"""

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
