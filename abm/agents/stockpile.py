"""Government stocks of oxides held outside the market: importers' strategic stockpiles
(bought in calm markets, released in a disruption) and an exporter's state reserve
(bought when its domestic price is below its policy band, released above it)."""

import mesa
import numpy as np

from abm.agents.seller import OxideSeller
from abm.levers import Stockpile


class Reserve(OxideSeller):
    """Holds a ``reserve`` [E] t outside the market in its region.

    What it releases joins its region's sellers' stock and is sold like theirs: contract
    deliveries (at home and abroad) first, then the region's own spot buyers, then
    buyers abroad. ``want`` [E] t is its bid in its region's market this month,
    ``bought`` [E] t what it got."""

    def __init__(self, model: mesa.Model, region: str, region_index: int, reserve: np.ndarray) -> None:
        super().__init__(model, region, region_index, np.zeros_like(reserve))
        self.reserve = np.array(reserve, dtype=float)
        self.want = np.zeros_like(self.reserve)
        self.bought = np.zeros_like(self.reserve)
        self.releasing = np.zeros(len(reserve), dtype=bool)

    def _trade(self, releasing: np.ndarray, release: np.ndarray, want: np.ndarray) -> None:
        """Where ``releasing`` [E], offer up to ``release`` [E] t of the reserve; elsewhere
        take back what was offered and not sold, and bid for ``want`` [E] t."""
        self.releasing = releasing
        unsold = np.where(releasing, 0.0, self.oxide)
        self.reserve = self.reserve + unsold
        release = np.where(releasing, np.minimum(self.reserve, release), 0.0)
        self.reserve = self.reserve - release
        self.oxide = self.oxide - unsold + release
        self.want = np.where(releasing, 0.0, want)

    def receive(self, received: np.ndarray) -> None:
        self.bought = received
        self.reserve = self.reserve + received


class StrategicStockpile(Reserve):
    """An importer's stockpile for its region's manufacturers (the ``[stockpile]`` lever).

    Each month, element by element: when its region's importers were short last month or
    the price has spiked (``price > release_price_ratio x`` its 12-month smoothed level) it
    offers ``target / release_months`` of the reserve in its region's market; otherwise it
    takes back what it offered and did not sell, and buys ``(target - reserve) /
    fill_months``. The target is ``months`` of its region's current trend need.
    """

    def __init__(self, model: mesa.Model, region: str, region_index: int, reserve: np.ndarray,
                 lever: Stockpile, price: np.ndarray) -> None:
        super().__init__(model, region, region_index, reserve)
        self.lever = lever
        self.initial_reserve = self.reserve.copy()  # bought when the programme started
        self.smoothed_price = np.array(price, dtype=float)

    def decide(self, target: np.ndarray, price: np.ndarray, region_shortfall: np.ndarray) -> None:
        lever = self.lever
        releasing = (region_shortfall > 1e-9) | (price > lever.release_price_ratio * self.smoothed_price)
        self.smoothed_price = self.smoothed_price + (price - self.smoothed_price) / 12.0
        reserve = self.reserve + np.where(releasing, 0.0, self.oxide)
        self._trade(releasing, target / lever.release_months,
                    np.maximum(target - reserve, 0.0) / lever.fill_months)


class StateReserve(Reserve):
    """An exporter's state reserve (``abm.domestic_policy``): starts empty, buys ``buy``
    [E] t and offers ``offer`` [E] t as its policy decides each month."""

    def decide(self, buy: np.ndarray, offer: np.ndarray) -> None:
        self._trade(offer > 0, offer, buy)
