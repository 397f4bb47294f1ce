"""End users: the manufacturers that use rare earths, where they are, as one population
whose state lives in arrays, and the Mesa agent that views one of them.

Magnet users (EV traction motors, wind turbines, industrial motors, electronics, defence,
other) buy finished magnets of the grades their products need; the other sectors
(catalysts, glass and polishing, alloys and other, ceramics and phosphors) buy oxides.
Shapes use B end users, P products, E elements, R regions; quantities t per month, prices
USD/kg.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np

from abm.agents.member import Member, Row

from abm.metrics import USD_PER_T_PER_USD_PER_KG
from abm.scenario import MarketParameters


class EndUsers:
    """Every end user's state, in arrays indexed by end user.

    Need (t/month of each product) follows the sector's growth trend and prices, as in
    version 1: ``need = base x (1 + growth) ** years x (p / p_ref) ** e_short x (m / p_ref)
    ** (e_long - e_short) x noise`` with ``m`` the price smoothed over
    ``price_memory_months``. A user wants ``need`` plus a ``1 / restock_months`` share of
    the gap to its stock target, ``inventory_months x need``, raised by
    ``hoarding_response x tension`` with the dominant exporter. ``intensity`` [B, E]
    scales its use of each element (substitution research lowers it): an oxide user
    buys that much less of the oxide; a magnet user moves that share of its magnets that
    need the element to the grade that does not (grain-boundary diffusion and
    redesign), or, when every grade needs it, buys that many fewer magnets.
    """

    def __init__(
        self,
        region: np.ndarray,
        sector: tuple[str, ...],
        base_need: np.ndarray,
        growth: np.ndarray,
        lifetime_months: np.ndarray,
        recyclable: np.ndarray,
        inventory_months: np.ndarray,
        content: np.ndarray,
        substitutes: Substitutes,
    ) -> None:
        self.region = np.asarray(region, dtype=int)  # [B]
        self.sector = sector  # [B] end use or oxide sector
        self.base_need = np.asarray(base_need, dtype=float)  # [B, P] t/month in the base year
        self.growth = np.asarray(growth, dtype=float)  # [B] 1/yr
        self.recyclable = np.asarray(recyclable, dtype=float)  # [B]
        self.inventory_months = np.asarray(inventory_months, dtype=float)  # [B]
        self.content = content  # [P, E]
        self.substitutes = substitutes
        self.intensity = np.ones((len(self.region), content.shape[1]))  # [B, E]
        self._factors_for: np.ndarray | None = None  # the intensity ``_factors`` were computed at
        self._factors: tuple[np.ndarray, np.ndarray] | None = None
        self.price_memory = np.ones_like(self.base_need)
        self.need = self.base_need.copy()
        self.reference_need = self.base_need.copy()  # [B, P] what need would be at reference prices
        self.want = self.base_need.copy()
        self.stock = self.inventory_months[:, None] * self.base_need
        zeros = np.zeros_like(self.base_need)
        self.received, self.consumed, self.shortfall, self.spend = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
        self.contract_received = zeros.copy()
        self.lifetime = np.asarray(lifetime_months, dtype=int)
        # Element content consumed over the last lifetimes, a ring buffer [H, B, E], so
        # end-of-life scrap flows from month 0 (growth traced back).
        horizon = int(self.lifetime.max()) if len(self.lifetime) else 1
        past = np.arange(-horizon, 0)[:, None] / 12.0
        used = self.base_need @ content  # [B, E]
        self._history = used[None] * ((1.0 + self.growth[None, :]) ** past)[:, :, None]
        self._horizon = horizon

    def __len__(self) -> int:
        return len(self.region)

    def trend_need(self, month: int) -> np.ndarray:
        """[B, P] need at reference prices this month: base x growth trend, after
        substitution. An element's lower intensity cuts every product that contains it;
        what a magnet grade saves in elements the lightest grade does without (Dy, Tb) is
        bought as that grade instead (``Substitutes``)."""
        trend = self.base_need * ((1.0 + self.growth) ** (month / 12.0))[:, None]
        kept, redesigned = self._substitution_factors()
        return trend * kept * redesigned + (trend * kept * (1.0 - redesigned)) @ self.substitutes.shift

    def _substitution_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """[B, P] x 2: the share of each product's trend need kept (the lowest intensity of
        the elements it shares with the lightest grade) and the share not redesigned
        away, recomputed only when ``intensity`` has changed."""
        if self._factors_for is None or not np.array_equal(self._factors_for, self.intensity):
            subs = self.substitutes
            self._factors = _lowest(self.intensity, subs.common), _lowest(self.intensity, subs.extra)
            self._factors_for = self.intensity.copy()
        return self._factors

    def plan(
        self,
        month: int,
        price: np.ndarray,
        reference_price: np.ndarray,
        tension: np.ndarray,
        noise: np.ndarray,
        params: MarketParameters,
    ) -> None:
        """Set ``need``, ``reference_need`` (the need at reference prices: the trend with
        this month's noise, before the price response), ``stock_target`` (working stock
        aimed at, raised by tension with the dominant exporter) and ``want`` [B, P] t at
        this month's posted prices ``price`` [B, P]."""
        ratio = price / reference_price
        self.price_memory = self.price_memory + (ratio - self.price_memory) / params.price_memory_months
        response = ratio**params.short_run_elasticity * self.price_memory ** (
            params.long_run_elasticity - params.short_run_elasticity
        )
        trend = self.trend_need(month)
        self.reference_need = trend * noise
        self.need = trend * response * noise
        self.stock_target = self.inventory_months[:, None] * self.need * (1.0 + params.hoarding_response * tension)[:, None]
        self.want = np.maximum(self.need + (self.stock_target - self.stock) / params.restock_months, 0.0)

    def consume(self, received: np.ndarray, contract_received: np.ndarray, contract_price: np.ndarray,
                price: np.ndarray, month: int) -> None:
        """Use what arrived and what is in stock; need left unserved is shortfall. Spend is
        USD this month: contract deliveries at the contract price, the rest at ``price``."""
        self.received, self.contract_received = received, contract_received
        spot = received - contract_received
        self.spend = (contract_received * contract_price + spot * price) * USD_PER_T_PER_USD_PER_KG
        available = self.stock + received
        self.consumed = np.minimum(self.need, available)
        self.stock = available - self.consumed
        self.shortfall = self.need - self.consumed
        self._history[month % self._horizon] = self.consumed @ self.content

    def end_of_life_scrap(self, month: int) -> np.ndarray:
        """[B, E] t of each element in products reaching end of life this month (the
        recyclable share of what each user consumed one product lifetime ago)."""
        rows = (month - self.lifetime) % self._horizon
        return self.recyclable[:, None] * self._history[rows, np.arange(len(self.region))]


def _lowest(intensity: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, P] the lowest intensity [B, E] among the elements ``mask`` [P, E] names (1 if none)."""
    return np.where(mask[None], intensity[:, None, :], 1.0).min(axis=2)


@dataclass(frozen=True)
class Substitutes:
    """How end users save an element. ``common`` [P, E]: a product's elements that the
    lightest magnet grade also holds (an oxide: its element), saved only by buying less;
    ``extra`` [P, E]: the elements a magnet grade holds beyond the lightest (Dy, Tb),
    saved by redesign; ``shift`` [P, P] t of the lightest grade bought per t of a heavier
    grade redesigned away."""

    common: np.ndarray
    extra: np.ndarray
    shift: np.ndarray

    @classmethod
    def from_content(cls, content: np.ndarray, magnets: np.ndarray) -> Substitutes:
        """From the content [P, E] of every product and the indices of the magnet grades;
        the lightest grade is the one with the fewest elements (then the least content)."""
        holds = content > 0
        light = magnets[np.lexsort((content[magnets].sum(axis=1), holds[magnets].sum(axis=1)))[0]]
        extra = np.zeros_like(holds)
        extra[magnets] = holds[magnets] & ~holds[light]
        shift = np.zeros((len(content), len(content)))
        shift[magnets[extra[magnets].any(axis=1)], light] = 1.0
        return cls(common=holds & ~extra, extra=extra, shift=shift)


class EndUser(Member):
    """One end user, a view into the ``EndUsers`` arrays: its ``sector`` (end use or oxide
    sector) in ``region``, and its need, receipts, shortfall and stock [P] t."""

    need = Row("need")
    received = Row("received")
    shortfall = Row("shortfall")
    stock = Row("stock")
    spend = Row("spend")
    intensity = Row("intensity")

    def __init__(self, model: mesa.Model, population: EndUsers, index: int) -> None:
        super().__init__(model, population, index)
        self.sector = population.sector[index]
