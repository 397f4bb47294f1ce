"""The supply chain one run simulates: products, recipes, prices built up from cost, and
the balanced base year. Pure numpy, no Mesa.

Shapes use P products (``SupplyChain.products``: concentrates by deposit, oxides by
element, metals, magnet grades), E elements, R regions, U magnet end uses and S oxide
sectors. Quantities are t per year here (the model divides by 12), content is t of an
element's oxide (REO equivalent) per t of product, prices USD/kg of product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.data import Calibration
from abm.data.chain import SupplyChain

# Products in which the named elements make at least this share of the REO content are
# covered by an export rule on those elements: a Dy quota reaches Dy oxide, Dy metal and
# Dy-bearing magnets, not a light concentrate with a trace of Dy.
COVERED_SHARE = 0.01
# Sector of demand_by_sector.csv whose oxide demand the magnet stage now makes.
MAGNET_SECTOR = "magnets"


@dataclass(frozen=True)
class Chain:
    """The products of one base year with what each stage needs to price and convert them.

    ``recipe`` [P, P] t of input (column) per t of output (row) for metals and magnets;
    ``separation`` [P, P] t of oxide (row) per t REO of concentrate (column);
    ``reference_price`` [P] USD/kg: an oxide's from elements.csv, every other built up
    from cost (``reference_prices``); ``trade_cost`` [P] ad valorem fraction of a
    shipment between regions.
    """

    data: SupplyChain
    reference_price: np.ndarray
    conversion_floor: np.ndarray  # [P] USD/kg: the cost floor a product's own stage adds (``cost_floors``)

    @property
    def products(self) -> tuple[str, ...]:
        return self.data.products

    @property
    def content(self) -> np.ndarray:
        return self.data.content

    def stage_index(self, stage: str) -> np.ndarray:
        """[k] indices of the products of one stage, in product order."""
        return np.array(self.data.stage_products(stage), dtype=int)

    def oxide_of(self, elements: tuple[str, ...], element: str) -> int:
        """Index of an element's oxide product."""
        return int(self.stage_index("oxide")[elements.index(element)])

    def covered(self, element_mask: np.ndarray) -> np.ndarray:
        """[P] products an export rule on the elements of ``element_mask`` [E] reaches."""
        total = self.content.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(total > 0, (self.content * element_mask).sum(axis=1) / total, 0.0)
        return share >= COVERED_SHARE

    def willingness_to_pay(self, price: np.ndarray, output_price: np.ndarray | None = None,
                           yielding: np.ndarray | None = None) -> np.ndarray:
        """[P, R] USD/kg the most a converter can pay for each product it uses (derived
        demand), at prices ``price`` [P, R] of everything else and its metal and magnet
        outputs selling at ``output_price`` [P, R] (default ``price``): for a concentrate
        the oxides one kg yields less their separation cost (as in ``reference_prices``),
        each oxide counted for the share of the region's separators that yield it this
        month (``yielding`` [P, R], default 1: ``Converters.yielding_share``); for an
        input i of a metal or magnet o, the best over the products made of it of
        ``(output price of o - conversion cost of o - cost of o's other inputs) / t of i
        per t of o``; 0 for products no converter uses (magnets) or whose output no
        longer pays for the other inputs. At reference prices every input's willingness
        to pay is its reference price (every stage's margin is its cost)."""
        data, value = self.data, np.zeros_like(price)
        value[self.stage_index("concentrate")] = self.concentrate_value(price, yielding)
        made = np.concatenate([self.stage_index("metal"), self.stage_index("magnet")])
        recipe = data.recipe[made]  # [M, P] t of input per t of output
        sells_at = price if output_price is None else output_price
        left = sells_at[made] - data.conversion_cost[made, None] - self.input_cost(price)[made]  # [M, R]
        uses = recipe > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # what o can pay for input i: its margin over all inputs, plus i's own cost, per t of i
            pays = (left[:, None, :] + recipe[:, :, None] * price[None, :, :]) / recipe[:, :, None]
        best = np.where(uses[:, :, None], pays, -np.inf).max(axis=0)  # [P, R]
        used = uses.any(axis=0)
        value[used] = best[used]
        return np.maximum(value, 0.0)

    def concentrate_value(self, price: np.ndarray, yielding: np.ndarray | None = None) -> np.ndarray:
        """[D, R] USD/kg of REO: what each concentrate's oxides fetch at ``price`` [P, R]
        less their separation cost, each oxide counted for the share ``yielding`` [P, R]
        (default 1) of the region's separators that yield it (negative where the oxides
        do not pay for their separation)."""
        data, oxides = self.data, self.stage_index("oxide")
        margin = price[oxides] - data.conversion_cost[oxides, None]
        if yielding is not None:
            margin = margin * yielding[oxides]
        return data.separation[np.ix_(oxides, self.stage_index("concentrate"))].T @ margin

    def input_cost(self, price: np.ndarray) -> np.ndarray:
        """[P, ...] USD/kg of output: what the inputs of one kg of each product cost at
        ``price`` [P, ...] (zero for products made by separation or mining)."""
        return np.tensordot(self.data.recipe, price, axes=(1, 0))


def reference_prices(data: SupplyChain, oxide_price: np.ndarray) -> np.ndarray:
    """[P] base-year prices: oxides at ``oxide_price`` [E] (elements.csv); a concentrate at
    what a separator can pay for it, the oxides it yields less the separation cost, and
    never below its mining cost; a metal or magnet at the cost of its inputs plus its
    conversion cost (metals first, then the magnets made of them)."""
    price = np.zeros(len(data.products))
    oxides = np.array(data.stage_products("oxide"))
    price[oxides] = oxide_price
    for c in data.stage_products("concentrate"):
        separated = data.separation[oxides, c]
        value = float(separated @ (oxide_price - data.conversion_cost[oxides]))
        price[c] = max(value, float(data.conversion_cost[c]))
    for stage in ("metal", "magnet"):
        made = np.array(data.stage_products(stage))
        price[made] = data.recipe[made] @ price + data.conversion_cost[made]
    return price


def cost_floors(data: SupplyChain, reference_price: np.ndarray, basket: np.ndarray) -> np.ndarray:
    """[P] USD/kg each stage's own cost: mining cost for a concentrate, metal and magnet
    making cost for those products (their inputs come on top, at market prices), and for
    an oxide its share of the separation cost allocated by value: oxides are joint
    products of one basket, so an oxide's floor is the separation cost per kg of REO times
    its reference price over the world basket's reference value per kg (La and Ce at
    about 1 USD/kg carry little of it, Tb much). ``basket`` [E] is the world's mined
    REO by element, a share of its total."""
    floor = data.conversion_cost.copy()
    oxides = np.array(data.stage_products("oxide"))
    value_per_kg = float(basket @ reference_price[oxides] / basket.sum())
    floor[oxides] = data.conversion_cost[oxides] * reference_price[oxides] / value_per_kg
    return floor


def build_chain(data: SupplyChain, calibration: Calibration) -> Chain:
    """The chain of ``data``'s base year, with prices from ``calibration``'s oxide prices."""
    price = reference_prices(data, calibration.reference_price)
    floor = cost_floors(data, price, calibration.mined_by_deposit @ calibration.basket)
    return Chain(data=data, reference_price=price, conversion_floor=floor)


@dataclass(frozen=True)
class BaseYear:
    """The balanced base year, t per year.

    ``oxide_supply`` [E] separated from the world's mines; ``magnet_output`` world output
    of finished magnets; ``magnet_use`` [U, R, P] magnets bought by each end use in each
    region; ``oxide_use`` [S, R, E] oxide bought by each sector outside magnets (sectors
    of sectors.csv other than magnets); ``stage_output`` [P] world output of each product;
    ``swarf_oxide`` [E] oxide recovered from magnet makers' scrap.
    """

    oxide_supply: np.ndarray
    magnet_output: float
    magnet_use: np.ndarray
    oxide_use: np.ndarray
    stage_output: np.ndarray
    swarf_oxide: np.ndarray


def base_year(calibration: Calibration, chain: Chain, separation_yield: float, swarf_recovery: float,
              separated_share: np.ndarray | None = None) -> BaseYear:
    """Size the base year so that it balances, element by element.

    World oxide supply is the mines' capacity times their baskets times the separation
    yield, times ``separated_share`` [E] (default 1), the share of each element that the
    base year's separators yield (separation_scope.csv: outside China no Dy or Tb before
    2025; ``Converters.separated_share``); the rest goes with the tailings. Magnet
    output M is set so that magnets take the magnet share of Nd in
    demand_by_sector.csv (net of Nd recovered from magnet makers' swarf); magnets are
    split by end use, region and grade (magnet_use.csv, magnet_grades.csv). The oxide
    the magnets need of every other element follows from the recipes, and what is left
    of each element's supply goes to the other sectors in demand_by_sector.csv's
    proportions. Raises ValueError when magnets alone would need more of an element than
    the world separates.
    """
    data, elements = chain.data, calibration.elements
    oxides = chain.stage_index("oxide")
    magnets = chain.stage_index("magnet")
    metals = chain.stage_index("metal")
    mined = calibration.mined_by_deposit
    supply = mined @ calibration.basket * separation_yield  # [E]
    if separated_share is not None:
        supply = supply * separated_share

    per_magnet = data.magnet_use_share.sum(axis=1) @ data.grade_mix  # [P] t of each grade per t of magnets
    metal_per_magnet = data.recipe[:, metals].T @ per_magnet  # [P_metal]
    oxide_per_magnet = data.recipe[np.ix_(metals, oxides)].T @ metal_per_magnet  # [E] t oxide per t magnet
    swarf = (metal_per_magnet @ data.content[metals] - per_magnet @ data.content) * swarf_recovery  # [E]
    net = oxide_per_magnet - swarf
    sector = calibration.sectors.index(MAGNET_SECTOR)
    nd = elements.index("Nd")
    output = calibration.sector_share[nd, sector] * supply[nd] / net[nd]
    other = supply - output * net
    if (other < -1e-9 * supply).any():
        short = elements[int(np.argmin(other / supply))]
        raise ValueError(f"base year {calibration.base_year}: magnets alone would need more {short} than the world separates")
    other = np.maximum(other, 0.0)
    rest = np.delete(calibration.sector_share, sector, axis=1)  # [E, S]
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(rest.sum(axis=1, keepdims=True) > 0, rest / rest.sum(axis=1, keepdims=True), 0.0)
    region_share = np.delete(calibration.region_share, sector, axis=0)  # [S, R]
    oxide_use = np.einsum("e,es,sr->sre", other, rest, region_share)

    stage_output = np.zeros(len(chain.products))
    stage_output[magnets] = output * per_magnet[magnets]
    stage_output[metals] = output * metal_per_magnet
    stage_output[oxides] = supply
    stage_output[chain.stage_index("concentrate")] = mined
    magnet_use = output * data.magnet_use_share[:, :, None] * data.grade_mix[:, None, :]
    return BaseYear(
        oxide_supply=supply, magnet_output=float(output), magnet_use=magnet_use, oxide_use=oxide_use,
        stage_output=stage_output, swarf_oxide=output * swarf,
    )
