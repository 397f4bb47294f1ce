"""Refiner: separation capacity in a nation, the chokepoint between mine and market."""

import mesa
import numpy as np

from abm.agents.seller import OxideSeller
from abm.levers import ramp


class Refiner(OxideSeller):
    """Buys mixed concentrate and separates it into oxides it sells in its region.

    It takes feed first from ``feed_priority`` (its own mines, or a captive source such
    as Lynas Malaysia's Mount Weld concentrate), then from any nation whose export
    rules let concentrate reach it; it separates up to capacity each month, losing
    ``1 - separation_yield`` of what it processes. A plant built by the refining lever
    has a ``planned_capacity`` that comes online at ``online_month`` and ramps up; it is
    not part of the trend growth of existing capacity.
    """

    def __init__(
        self,
        model: mesa.Model,
        region: str,
        region_index: int,
        capacity: float,
        feed_priority: int,
        oxide: np.ndarray,
    ) -> None:
        super().__init__(model, region, region_index, oxide)
        self.capacity = capacity  # t REO / month
        self.feed_priority = feed_priority
        self.feed = np.zeros_like(self.oxide)
        self.feed_total = 0.0
        self.losses = np.zeros_like(self.oxide)
        self.availability = 1.0  # share of capacity usable this month (partner disruptions)
        self.planned_capacity: float | None = None
        self.online_month = 0
        self.ramp_months = 0

    @property
    def feed_wanted(self) -> float:
        """t REO of concentrate it will buy this month: enough to run at capacity."""
        return max(self.capacity - self.feed_total, 0.0)

    def take_feed(self, oxides: np.ndarray, tonnes: float) -> None:
        self.feed = self.feed + oxides
        self.feed_total += tonnes

    def separate(self, separation_yield: float) -> None:
        throughput = min(self.capacity * self.availability, self.feed_total)
        fraction = throughput / self.feed_total if self.feed_total > 0 else 0.0
        processed = self.feed * fraction
        self.feed = self.feed - processed
        self.feed_total -= throughput
        self.oxide = self.oxide + processed * separation_yield
        self.losses = processed * (1.0 - separation_yield)

    def plan(self, capacity: float, online_month: int, ramp_months: int) -> None:
        """Make this a new plant: ``capacity`` t REO/month from ``online_month``, ramping up."""
        self.planned_capacity, self.online_month, self.ramp_months = capacity, online_month, ramp_months
        self.capacity = capacity * ramp(self.model.month, online_month, ramp_months)

    def grow(self, monthly_factor: float) -> None:
        """Set next month's capacity: trend growth, or a new plant's ramp."""
        if self.planned_capacity is None:
            self.capacity *= monthly_factor
        else:
            self.capacity = self.planned_capacity * ramp(self.model.month + 1, self.online_month, self.ramp_months)
