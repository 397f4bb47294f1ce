"""Scoring replications against the observed targets: two-sided verdicts, proper scores
and the loss the calibration minimises.

Every target has an observed range ``[low, high]`` (its source's range, or the point
value) and an *acceptance range* around it: within a factor ``FACTOR`` of the range
for ratios, within ``TIMING_MONTHS`` months for peak timing. A lower bound (a peak
read off sparse points) accepts from the bound down by the factor up to ``FACTOR``
times the bound, so an overshoot of more than 2x fails. A target **holds** when

- the simulated 90 % band (5th to 95th percentile over replications) reaches the
  observed range (for a lower bound: its top reaches the bound), and
- the simulated median lies inside the acceptance range.

Proper scores, on the scale the loss uses (natural log of a ratio; years for timing):
the interval score of the 90 % band (Gneiting and Raftery 2007, JASA 102, eq. 43) and
the ensemble CRPS (the same paper, eq. 20: E|X - y| - E|X - X'| / 2), with ``y`` the
observed value. Lower is better for both.
"""

from dataclasses import dataclass

import numpy as np

from abm.validation.history import Target
from abm.validation.replay import Replay
from abm.validation.targets import simulated_value

BAND = (5.0, 95.0)  # percentiles of the simulated band
ALPHA = 1.0 - (BAND[1] - BAND[0]) / 100.0  # the band is the central (1 - ALPHA) interval
FACTOR = 2.0  # a ratio's median may miss the observed range by at most this factor
TIMING_MONTHS = 3.0  # a peak's median may miss the observed months by at most a quarter
TIMING_KIND = "peak_months_after_start"


def _scale(target: Target, values: np.ndarray | float) -> np.ndarray:
    """Values on the loss's scale: years for timing, natural logs for ratios."""
    values = np.asarray(values, dtype=float)
    if target.kind == TIMING_KIND:
        return values / 12.0
    return np.log(np.maximum(values, 1e-12))


def acceptance(target: Target) -> tuple[float, float]:
    """The range a simulated median (or one run's value) must fall in."""
    if target.kind == TIMING_KIND:
        return target.low - TIMING_MONTHS, target.high + TIMING_MONTHS
    if target.bound == "lower":
        return target.low / FACTOR, FACTOR * target.low
    return target.low / FACTOR, FACTOR * target.high


@dataclass(frozen=True)
class TargetResult:
    """One target's simulated values over the replications, and how they compare."""

    target: Target
    values: np.ndarray  # one simulated value per replication

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def low(self) -> float:
        return float(np.percentile(self.values, BAND[0]))

    @property
    def high(self) -> float:
        return float(np.percentile(self.values, BAND[1]))

    @property
    def covered(self) -> bool:
        """The simulated 90 % band reaches the observed range."""
        if self.target.bound == "lower":
            return self.high >= self.target.low
        return self.low <= self.target.high and self.high >= self.target.low

    @property
    def accepted(self) -> bool:
        """The simulated median lies inside the acceptance range."""
        low, high = acceptance(self.target)
        return low <= self.median <= high

    @property
    def within(self) -> bool:
        """The target holds: covered by the band, and the median accepted."""
        return self.covered and self.accepted

    @property
    def run_holds(self) -> np.ndarray:
        """[R] bool: each replication's own value inside the acceptance range."""
        low, high = acceptance(self.target)
        return (self.values >= low) & (self.values <= high)

    @property
    def ratio(self) -> float:
        """Simulated median over the observed value (1 is a hit)."""
        return self.median / self.target.observed

    @property
    def error(self) -> float:
        """How far the median misses the observed range, on the loss's scale: zero
        inside it (above a lower bound up to ``FACTOR`` times it)."""
        target = self.target
        high = FACTOR * target.low if target.bound == "lower" else target.high
        median, low, high = (float(x) for x in _scale(target, [self.median, target.low, high]))
        return min(median - low, 0.0) + max(median - high, 0.0)

    @property
    def interval_score(self) -> float:
        """Interval score of the 90 % band for the observed value (loss scale)."""
        low, high, observed = (float(x) for x in _scale(self.target, [self.low, self.high, self.target.observed]))
        return (high - low) + 2.0 / ALPHA * (max(low - observed, 0.0) + max(observed - high, 0.0))

    @property
    def crps(self) -> float:
        """Ensemble CRPS of the replications for the observed value (loss scale)."""
        values = _scale(self.target, self.values)
        observed = float(_scale(self.target, self.target.observed))
        spread = np.abs(values[:, None] - values[None, :]).mean()
        return float(np.abs(values - observed).mean() - spread / 2.0)


def evaluate_targets(targets: tuple[Target, ...], runs: list[Replay], start_year: int) -> list[TargetResult]:
    """Each target's simulated value in every run."""
    return [
        TargetResult(target, np.array([simulated_value(target, run, start_year) for run in runs]))
        for target in targets
    ]


def group_of(target: Target) -> str:
    """The group a target is judged with: its kind, and its zone for price paths."""
    return f"{target.kind} ({target.zone})" if target.kind in ("price_ratio", "mean_ratio") else target.kind


def joint_hold_share(results: list[TargetResult]) -> float:
    """Share of replications in which every one of ``results`` holds at once (each
    run's own value inside its acceptance range)."""
    return float(np.logical_and.reduce([r.run_holds for r in results]).mean())


def calibration_loss(results: list[TargetResult]) -> float:
    """Mean squared miss of the median (``TargetResult.error``) over targets, each group
    of targets weighted equally, so that many price targets do not outvote one
    quota-fill target."""
    groups = sorted({group_of(r.target) for r in results})
    per_group = [np.mean([r.error**2 for r in results if group_of(r.target) == group]) for group in groups]
    return float(np.mean(per_group))
