"""StrategicStockpile: a government's stock of oxides, bought in calm markets, released in a disruption."""

import mesa
import numpy as np

from abm.agents.seller import OxideSeller
from abm.levers import Stockpile


class StrategicStockpile(OxideSeller):
    """Holds a ``reserve`` [E] t outside the market for its region's manufacturers.

    What it releases joins its region's sellers' stock and is sold like theirs: contract
    deliveries (at home and abroad) first, then the region's own spot buyers, then
    buyers abroad.

    Each month, element by element: when its region's importers were short last month or
    the price has spiked (``price > release_price_ratio x`` its 12-month smoothed level) it
    offers ``target / release_months`` of the reserve in its region's market; otherwise it
    takes back what it offered and did not sell, and buys ``(target - reserve) /
    fill_months``. The target is ``months`` of its region's current trend need.
    """

    def __init__(self, model: mesa.Model, region: str, region_index: int, reserve: np.ndarray,
                 lever: Stockpile, price: np.ndarray) -> None:
        super().__init__(model, region, region_index, np.zeros_like(reserve))
        self.lever = lever
        self.reserve = np.array(reserve, dtype=float)
        self.initial_reserve = self.reserve.copy()  # bought when the programme started
        self.smoothed_price = np.array(price, dtype=float)
        self.want = np.zeros_like(self.reserve)
        self.bought = np.zeros_like(self.reserve)
        self.releasing = np.zeros(len(reserve), dtype=bool)

    def decide(self, target: np.ndarray, price: np.ndarray, region_shortfall: np.ndarray) -> None:
        lever = self.lever
        self.releasing = (region_shortfall > 1e-9) | (price > lever.release_price_ratio * self.smoothed_price)
        self.smoothed_price = self.smoothed_price + (price - self.smoothed_price) / 12.0
        unsold = np.where(self.releasing, 0.0, self.oxide)
        self.reserve = self.reserve + unsold
        release = np.where(self.releasing, np.minimum(self.reserve, target / lever.release_months), 0.0)
        self.reserve = self.reserve - release
        self.oxide = self.oxide - unsold + release
        self.want = np.where(self.releasing, 0.0, np.maximum(target - self.reserve, 0.0) / lever.fill_months)

    def receive(self, received: np.ndarray) -> None:
        self.bought = received
        self.reserve = self.reserve + received
