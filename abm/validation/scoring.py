"""Scoring replications against the observed targets: medians, bands, whether each
target is within, and the loss the calibration minimises.

A target is *within* when the observed value lies inside the simulated 90 % band (5th
to 95th percentile over replications), or, for an observation that only bounds the
truth from below, when the band reaches it.
"""

from dataclasses import dataclass

import numpy as np

from abm.validation.history import Target
from abm.validation.replay import Replay
from abm.validation.targets import simulated_value

BAND = (5.0, 95.0)  # percentiles of the simulated band


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
    def within(self) -> bool:
        observed = self.target.observed
        if self.target.bound == "lower":
            return self.high >= observed
        return self.low <= observed <= self.high

    @property
    def ratio(self) -> float:
        """Simulated median over the observed value (1 is a hit, whatever the band)."""
        return self.median / self.target.observed

    @property
    def error(self) -> float:
        """How far the median misses, on the scale calibration minimises: log ratio for
        ratios, years for timing; zero when a lower bound is reached."""
        observed, median = self.target.observed, self.median
        if self.target.kind == "peak_months_after_start":
            return (median - observed) / 12.0
        miss = float(np.log(max(median, 1e-12) / observed))
        return min(miss, 0.0) if self.target.bound == "lower" else miss


def evaluate_targets(targets: tuple[Target, ...], runs: list[Replay], start_year: int) -> list[TargetResult]:
    """Each target's simulated value in every run."""
    return [
        TargetResult(target, np.array([simulated_value(target, run, start_year) for run in runs]))
        for target in targets
    ]


def calibration_loss(results: list[TargetResult]) -> float:
    """Mean squared miss of the median (``TargetResult.error``) over targets, each kind
    of target weighted equally, so the ten price-fall targets do not outvote the single
    quota-fill target."""
    kinds = sorted({r.target.kind for r in results})
    per_kind = [np.mean([r.error**2 for r in results if r.target.kind == kind]) for kind in kinds]
    return float(np.mean(per_kind))
