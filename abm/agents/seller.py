"""What refiners and recyclers share: a stock of separated oxide sold in their region."""

import mesa
import numpy as np


class OxideSeller(mesa.Agent):
    """Holds oxide [E] t in ``region_index``'s market; the market sells it pro rata."""

    def __init__(self, model: mesa.Model, region: str, region_index: int, oxide: np.ndarray) -> None:
        super().__init__(model)
        self.region = region
        self.region_index = region_index
        self.oxide = np.array(oxide, dtype=float)

    def sell(self, sold_fraction: np.ndarray) -> None:
        """Give up the same share of each element's stock as its region sold in all."""
        self.oxide = self.oxide * (1.0 - sold_fraction)
