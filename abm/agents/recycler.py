"""Recycler: secondary oxide from end-of-life products, outside any foreign quota."""

import mesa
import numpy as np

from abm.agents.seller import OxideSeller


class Recycler(OxideSeller):
    """Collects a share of its region's end-of-life scrap and sells the oxide at home.

    The scrap pool is what the region's manufacturers consumed one product lifetime
    ago (recyclable uses only), so it is small for a decade when demand grew; output
    can never exceed it.
    """

    def __init__(self, model: mesa.Model, region: str, region_index: int, sources: list) -> None:
        super().__init__(model, region, region_index, np.zeros(len(model.elements)))
        self.sources = sources  # the importers whose products end their life here
        self.scrap_pool = np.zeros_like(self.oxide)
        self.recycled = np.zeros_like(self.oxide)

    def recycle(self, collection_rate: float) -> None:
        self.scrap_pool = sum((importer.end_of_life_scrap() for importer in self.sources), np.zeros_like(self.oxide))
        self.recycled = collection_rate * self.scrap_pool
        self.oxide = self.oxide + self.recycled
