"""What refiners, recyclers and strategic stockpiles share: oxide offered in their region."""

import mesa
import numpy as np


class OxideSeller(mesa.Agent):
    """Holds oxide [E] t on offer in ``region_index``'s market; the market sells it pro rata."""

    def __init__(self, model: mesa.Model, region: str, region_index: int, oxide: np.ndarray) -> None:
        super().__init__(model)
        self.region = region
        self.region_index = region_index
        self.oxide = np.array(oxide, dtype=float)
        self.sold = np.zeros_like(self.oxide)

    def sell(self, sold_fraction: np.ndarray) -> None:
        """Give up the same share of each element's stock as its region sold in all."""
        self.sold = self.oxide * sold_fraction
        self.oxide = self.oxide - self.sold
