"""Importer: a manufacturing sector in a region that needs oxides to make its products."""

import mesa
import numpy as np

from abm.levers import Contracts
from abm.metrics import USD_PER_T_PER_USD_PER_KG
from abm.scenario import MarketParameters


class Importer(mesa.Agent):
    """Plans purchases, holds contracts and a working stock, consumes, and records shortfall.

    Need (t/month) follows the sector's growth trend and prices:
    ``need = base x (1 + growth) ** years x (p / p_ref) ** e_short x (m / p_ref) ** (e_long - e_short) x noise``
    where ``m`` is the price smoothed over ``price_memory_months``: demand answers a
    little at once and more the longer prices stay high (substitution and thrifting).
    It wants ``need + (stock target - stock) / restock_months``; the stock target is
    ``inventory_months x need``, raised by ``hoarding_response x tension`` with the
    dominant exporter, so buyers stock up as tension rises and release stock as it falls.
    Its contract book ``contract_book`` [R] gives the share of its trend need bought
    under contract from each origin region (separation capacity, capped by
    diversification rules, plus partnership offtake), priced when signed and renewed
    every ``contracts.months``. ``intensity`` [E] scales its use of each oxide: substitution
    research lowers it.
    """

    def __init__(
        self,
        model: mesa.Model,
        region: str,
        region_index: int,
        sector: str,
        base_need: np.ndarray,
        growth_per_year: float,
        lifetime_months: int,
        recyclable_fraction: float,
        contract_book: np.ndarray,
        reference_price: np.ndarray,
        params: MarketParameters,
        contracts: Contracts,
        contract_months_left: int,
    ) -> None:
        super().__init__(model)
        self.region = region
        self.region_index = region_index
        self.sector = sector
        self.base_need = np.array(base_need, dtype=float)  # [E] t / month in the base year
        self.growth_per_year = growth_per_year
        self.recyclable_fraction = recyclable_fraction
        self.contract_book = contract_book  # [R] share of trend need contracted from each origin
        self.reference_price = reference_price
        self.params = params
        self.contracts = contracts
        self.intensity = np.ones_like(np.asarray(base_need, dtype=float))
        self.price_memory = np.ones_like(self.base_need)  # smoothed price / reference
        self.need = self.base_need.copy()
        self.want = self.base_need.copy()
        self.stock = params.inventory_months * self.base_need
        self.received = np.zeros_like(self.base_need)
        self.consumed = np.zeros_like(self.base_need)
        self.shortfall = np.zeros_like(self.base_need)
        self.spend = np.zeros_like(self.base_need)  # [E] USD this month
        self.contract_received = np.zeros_like(self.base_need)
        self.contract_months_left = contract_months_left
        self._sign_contracts(reference_price)
        # Consumption one lifetime ago and since, so end-of-life scrap flows from month 0.
        past = np.arange(-lifetime_months, 0) / 12.0
        self._history = self.base_need[None, :] * (1.0 + growth_per_year) ** past[:, None]

    def trend_need(self) -> np.ndarray:
        """Need at reference prices this month: base x growth trend x intensity."""
        return self.intensity * self.base_need * (1.0 + self.growth_per_year) ** (self.model.month / 12.0)

    def _sign_contracts(self, price: np.ndarray) -> None:
        self.contract_volume = self.trend_need()[:, None] * self.contract_book[None, :]
        self.contract_price = price.copy()

    def plan_purchases(self, price: np.ndarray, tension: float, noise: np.ndarray) -> None:
        """Set ``need`` and ``want`` for this month at the posted ``price`` [E]."""
        params = self.params
        if self.contract_months_left <= 0:
            self._sign_contracts(price)
            self.contract_months_left = self.contracts.months
        self.contract_months_left -= 1
        ratio = price / self.reference_price
        self.price_memory = self.price_memory + (ratio - self.price_memory) / params.price_memory_months
        response = ratio**params.short_run_elasticity * self.price_memory ** (
            params.long_run_elasticity - params.short_run_elasticity
        )
        self.need = self.trend_need() * response * noise
        target = params.inventory_months * self.need * (1.0 + params.hoarding_response * tension)
        self.want = np.maximum(self.need + (target - self.stock) / params.restock_months, 0.0)

    def end_of_life_scrap(self) -> np.ndarray:
        """t of each oxide in products reaching end of life this month, recyclable part only."""
        return self.recyclable_fraction * self._history[self.model.month % len(self._history)]

    def consume(self, received: np.ndarray, contract_received: np.ndarray, price: np.ndarray) -> None:
        """Use what arrived and what is in stock; what need is left unserved is shortfall."""
        self.received = received
        self.contract_received = contract_received
        spot = received - contract_received
        self.spend = (contract_received * self.contract_price + spot * price) * USD_PER_T_PER_USD_PER_KG
        available = self.stock + received
        self.consumed = np.minimum(self.need, available)
        self.stock = available - self.consumed
        self.shortfall = self.need - self.consumed
        self._history[self.model.month % len(self._history)] = self.consumed
