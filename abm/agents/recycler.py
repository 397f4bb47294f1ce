"""Recycler: secondary oxide from end-of-life products and magnet makers' swarf."""

import mesa
import numpy as np

from abm.agents.seller import OxideSeller
from abm.levers import collection_share
from abm.metrics import USD_PER_T_PER_USD_PER_KG


class Recycler(OxideSeller):
    """Collects a share of its region's end-of-life scrap and sells the oxide at home.

    The scrap pool is what the region's end users (``sources``, indices into the
    model's ``EndUsers``) consumed one product lifetime ago (recyclable uses only), so it
    is small for a decade when demand grew. It collects ``collection_rate`` of the pool
    (raised by a recycling programme) as far as collection pays: ``collection_share`` of
    it at this month's prices plus any subsidy. Output can never exceed the pool.
    Magnet makers' swarf (``take_swarf``) comes on top: manufacturing scrap is recovered
    at the plant (facts.md: China recovered about 34 kt REO of it in 2024) and is not
    counted as ``recycled`` (end-of-life) oxide.
    """

    def __init__(self, model: mesa.Model, region: str, region_index: int, sources: np.ndarray,
                 collection_rate: float, subsidy_usd_per_kg: float) -> None:
        super().__init__(model, region, region_index, np.zeros(len(model.elements)))
        self.sources = np.asarray(sources, dtype=int)
        self.collection_rate = collection_rate
        self.subsidy_usd_per_kg = subsidy_usd_per_kg
        self.scrap_pool = np.zeros_like(self.oxide)
        self.recycled = np.zeros_like(self.oxide)
        self.swarf = np.zeros_like(self.oxide)

    def take_swarf(self, oxide: np.ndarray) -> None:
        """Add [E] t of oxide recovered from the region's magnet makers' swarf this month."""
        self.swarf = oxide
        self.oxide = self.oxide + oxide

    def recycle(self, scrap: np.ndarray, oxide_price: np.ndarray, reference_price: np.ndarray,
                cost_ratio: float) -> None:
        """Collect and process this month's end-of-life scrap (``scrap`` [B, E] t of each
        element reaching end of life at each end user, ``EndUsers.end_of_life_scrap``) of
        this recycler's sources at the region's oxide price (``oxide_price`` [E, R] USD/kg)."""
        self.scrap_pool = scrap[self.sources].sum(axis=0)
        price = oxide_price[:, self.region_index]
        paying = collection_share(price, reference_price, self.subsidy_usd_per_kg, cost_ratio)
        self.recycled = self.collection_rate * paying * self.scrap_pool
        self.oxide = self.oxide + self.recycled

    @property
    def subsidy_usd(self) -> float:
        """What the programme paid this month: subsidy x end-of-life oxide recovered."""
        return float(self.subsidy_usd_per_kg * self.recycled.sum() * USD_PER_T_PER_USD_PER_KG)
