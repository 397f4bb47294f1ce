"""Converters: every processing plant (separation, metal making, magnet making) as one
population whose state lives in arrays, and the Mesa agent that views one plant.

Separation, metal making and magnet making are one behaviour with different recipes
(shared/DESIGN.md §8): buy inputs, convert within capacity, sell outputs, hold stock.
Shapes use K plants, P products, E elements, R regions; quantities are t per month
(separation capacity in t REO of concentrate, other stages in t of output), stocks t.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np

from abm.agents.member import Member, Row

SEPARATION, METAL, MAGNET = "oxide", "metal", "magnet"  # the stage a plant's outputs belong to
STAGES = (SEPARATION, METAL, MAGNET)
# Months over which a plant's expected sales follow its actual sales.
SALES_MEMORY_MONTHS = 3.0


@dataclass
class Plant:
    """One plant to build: where, which stage, how big, and when (a project or a lever's
    plant has ``online`` and ``ramp_months``; an existing plant grows with the trend)."""

    stage: str
    region: int
    capacity: float  # t / month
    feed_share: np.ndarray | None = None  # [P] separation only: share of each concentrate in its feed
    online: int | None = None
    ramp_months: int = 0
    # [P] separation only: model month from which it yields each product (inf: never);
    # None: every product of its stage from month 0 (its ``online`` still applies)
    yields_from: np.ndarray | None = None


def ramp_share(month: int, online: np.ndarray, ramp_months: np.ndarray) -> np.ndarray:
    """[K] share of each planned plant's capacity running in ``month`` (``abm.levers.ramp``
    for arrays): 0 before ``online``, then rising linearly over ``ramp_months``."""
    return np.where(month < online, 0.0, np.minimum(1.0, (month - online + 1) / np.maximum(ramp_months, 1)))


class Converters:
    """The state of every plant, in arrays indexed by plant.

    ``inputs`` and ``outputs`` [K, P] t in stock; ``sales`` [K, P] t/month expected sales
    (a ``SALES_MEMORY_MONTHS`` smoothing of what it sold); ``capacity`` [K] t/month;
    ``availability`` [K] share of capacity usable this month (partner disruptions).

    Each month a plant converts what it holds (``convert``), then offers its outputs and
    bids for next month's inputs in the market. A metal or magnet plant plans each
    output to meet its expected sales and bring its output stock to ``cover_months`` of
    them, within capacity; the recipe (``recipe`` [P, P], t input per t output) and the
    inputs in stock bound each product separately, so a plant short of Dy makes fewer
    Dy-bearing magnets and leaves the Nd they would have used in stock. A separation
    plant runs all its concentrate through within capacity, yielding each oxide by the
    deposit's basket (``separation`` [P, P], t oxide per t REO of concentrate): separation
    capacity exceeds the world's mines, so separators take all the concentrate they can
    buy, bid up to what its oxides fetch (``Chain.willingness_to_pay``), and the oxides'
    prices settle where the mines' output meets end users' demand. A separation plant
    yields an oxide only from its start month (``yields_from`` [K, P] model month, inf
    for never; ``yielding`` [K, P] this month): before it, that element's content of the
    concentrate it processes goes with the tailings, a conversion loss.
    """

    def __init__(self, plants: list[Plant], n_products: int, stage_products: dict[str, np.ndarray]) -> None:
        self.stage = np.array([p.stage for p in plants])
        self.region = np.array([p.region for p in plants], dtype=int)
        installed = np.array([p.capacity for p in plants], dtype=float)
        self.availability = np.ones(len(plants))
        planned = np.array([p.online is not None for p in plants])
        self.planned = planned
        self.planned_capacity = np.where(planned, installed, 0.0)
        self.online = np.array([p.online if p.online is not None else 0 for p in plants], dtype=int)
        self.ramp_months = np.array([p.ramp_months for p in plants], dtype=int)
        # t/month: a plant's own capacity (trend growth or its project's ramp) and what investment adds to it
        self.built = np.where(planned, self.planned_capacity * ramp_share(0, self.online, self.ramp_months), installed)
        self.invested = np.zeros(len(plants))
        self.capacity = self.built.copy()
        self.makes = np.zeros((len(plants), n_products), dtype=bool)  # [K, P] products it can make
        for stage, products in stage_products.items():
            self.makes[np.ix_(self.stage == stage, products)] = True
        self.feed_share = np.zeros((len(plants), n_products))
        self.yields_from = np.zeros((len(plants), n_products))
        for k, plant in enumerate(plants):
            if plant.feed_share is not None:
                self.feed_share[k] = plant.feed_share
            if plant.yields_from is not None:
                self.yields_from[k] = plant.yields_from
        self.yielding = self.yields_from <= 0
        self.inputs = np.zeros((len(plants), n_products))
        self.outputs = np.zeros((len(plants), n_products))
        self.sales = np.zeros((len(plants), n_products))
        self.produced = np.zeros((len(plants), n_products))
        self.used = np.zeros((len(plants), n_products))  # [K, P] t of inputs converted this month
        self.sold = np.zeros((len(plants), n_products))
        self.bought = np.zeros((len(plants), n_products))
        self.want = np.zeros((len(plants), n_products))
        self.separating = self.stage == SEPARATION

    def __len__(self) -> int:
        return len(self.stage)

    # ----------------------------------------------------------------- planning
    def planned_output(self, cover_months: float, restock_months: float, next_month: bool = False) -> np.ndarray:
        """[K, P] t each metal or magnet plant means to make this month (or, with
        ``next_month``, next month, from the stock left after this month's expected
        sales): expected sales plus a ``1 / restock_months`` share of the gap to
        ``cover_months`` of output stock, scaled down to its usable capacity (0 for
        separation plants)."""
        wanted = self._output_target(cover_months, restock_months, next_month)
        target = np.where(self.makes & ~self.separating[:, None], wanted, 0.0)
        usable = self.capacity * self.availability
        total = target.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(total > usable, usable / np.where(total > 0, total, 1.0), 1.0)
        return target * scale[:, None]

    def _output_target(self, cover_months: float, restock_months: float, next_month: bool) -> np.ndarray:
        """[K, P] t of each output wanted this month (or next): expected sales and a share of the stock gap."""
        stock = self.outputs - self.sales if next_month else self.outputs
        gap = cover_months * self.sales - stock
        return np.maximum(self.sales + gap / restock_months, 0.0)

    def input_bids(self, recipe: np.ndarray, cover_months: float, restock_months: float) -> np.ndarray:
        """[K, P] t of each input a plant wants this month, for next month's conversion:
        what its planned output needs (a separation plant: concentrate for its usable
        capacity, spread over its feed) plus a ``1 / restock_months`` share of the gap
        between ``cover_months`` of that need and the stock it will hold after next
        month's use."""
        need = self.planned_output(cover_months, restock_months, next_month=True) @ recipe
        feed = self.capacity * self.availability
        need = np.where(self.separating[:, None], feed[:, None] * self.feed_share, need)
        gap = (cover_months - 1.0) * need - self.inputs
        if self.separating.any():  # concentrates are substitutes: the gap is in total REO
            feed_gap = (cover_months - 1.0) * feed - self.inputs.sum(axis=1)
            gap = np.where(self.separating[:, None], feed_gap[:, None] * self.feed_share, gap)
        self.want = np.maximum(need + gap / restock_months, 0.0)
        return self.want

    # --------------------------------------------------------------- conversion
    def convert(self, recipe: np.ndarray, separation: np.ndarray, content: np.ndarray, cover_months: float,
                restock_months: float) -> np.ndarray:
        """Make this month's outputs from the inputs in stock. Returns [K, E] t of each
        element lost in conversion (separation tailings, metal-making losses, magnet
        makers' swarf) by plant."""
        made = self.planned_output(cover_months, restock_months)
        need = made @ recipe  # [K, P] inputs
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = np.where(need > 0, np.minimum(1.0, self.inputs / np.where(need > 0, need, 1.0)), 1.0)
        uses = recipe > 0  # [P_out, P_in]
        limit = np.where(uses[None, :, :], fill[:, None, :], 1.0).min(axis=2)  # [K, P_out]
        made = made * limit
        used = made @ recipe
        feed = self.inputs.sum(axis=1)
        throughput = np.minimum(self.capacity * self.availability, feed)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(feed > 0, throughput / np.where(feed > 0, feed, 1.0), 0.0)
        separated_feed = self.inputs * share[:, None]
        used = np.where(self.separating[:, None], separated_feed, used)
        made = np.where(self.separating[:, None], (separated_feed @ separation.T) * self.yielding, made)
        self.inputs = np.maximum(self.inputs - used, 0.0)
        self.outputs = self.outputs + made
        self.produced, self.used = made, used
        return used @ content - made @ content

    # ------------------------------------------------------------------ trading
    def sell(self, sold_share: np.ndarray) -> None:
        """Give up ``sold_share`` [P, R] of each product's stock in the plant's region."""
        self.sold = self.outputs * sold_share.T[self.region]
        self.outputs = self.outputs - self.sold
        self.sales = self.sales + (self.sold - self.sales) / SALES_MEMORY_MONTHS

    def receive(self, bought: np.ndarray) -> None:
        self.bought = bought
        self.inputs = self.inputs + bought

    def grow(self, monthly_factor: float, next_month: int, invested: np.ndarray | None = None) -> None:
        """Next month's capacity: trend growth of existing plants, a planned plant's ramp,
        plus ``invested`` [K] t/month of private investment running (``abm.investment``);
        and the oxides each separation plant yields next month."""
        ramped = self.planned_capacity * ramp_share(next_month, self.online, self.ramp_months)
        self.built = np.where(self.planned, ramped, self.built * monthly_factor)
        if invested is not None:
            self.invested = invested
        self.capacity = self.built + self.invested
        self.yielding = self.yields_from <= next_month

    def yielding_share(self, region_onehot: np.ndarray) -> np.ndarray:
        """[P, R] share of each region's separation capacity (``region_onehot`` [K, R])
        that yields each product this month; 1 in a region without separation."""
        capacity = np.where(self.separating, self.capacity, 0.0)  # [K] t REO/month
        total = capacity @ region_onehot  # [R]
        yielding = (capacity[:, None] * self.yielding).T @ region_onehot  # [P, R]
        return np.where(total > 0, yielding / np.where(total > 0, total, 1.0), 1.0)

    def separated_share(self, separation: np.ndarray) -> np.ndarray:
        """[P] share of each oxide in the existing separation plants' feed that they
        yield this month, their feed taken at capacity in its mix (the base year's
        allocation, in which separation equals mining); 1 for a product no feed holds."""
        existing = self.separating & ~self.planned
        feed = np.where(existing, self.capacity, 0.0)[:, None] * self.feed_share  # [K, P] t REO/month
        content = feed @ separation.T  # [K, P] t oxide/month if every oxide were yielded
        total = content.sum(axis=0)
        return np.where(total > 0, (content * self.yielding).sum(axis=0) / np.where(total > 0, total, 1.0), 1.0)


class Converter(Member):
    """One plant, a view into the ``Converters`` arrays (for the app and agent reporters):
    its ``stage`` (the stage of what it makes), ``region``, ``capacity`` t/month, and its
    input and output stocks [P] t."""

    capacity = Row("capacity")  # t/month
    inputs = Row("inputs")
    outputs = Row("outputs")
    produced = Row("produced")
    sold = Row("sold")

    def __init__(self, model: mesa.Model, population: Converters, index: int) -> None:
        super().__init__(model, population, index)
        self.stage = str(population.stage[index])
