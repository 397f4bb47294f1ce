"""Monthly clearing of the oxide markets and the concentrate trade: pure numpy, no Mesa.

Shapes use E elements, R regions (each region is a market node: its sellers are the
refiners and recyclers located there, its buyers the importers located there), and
B buyers. Quantities are t REO per month, prices USD/kg.

Clearing happens at posted prices (sellers set them from inventory, see
``update_prices``), so a shortage shows up as unmet demand this month and as a higher
price next month, which is how real rare earth prices moved in 2010-2011: over a year,
not in one jump (Sprecher et al. 2017).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Tonnes below this are numerical dust, not trade.
TOLERANCE_T = 1e-9


def prorata_fill(
    supply: np.ndarray, demand: np.ndarray, link_cap: np.ndarray, rounds: int = 30
) -> np.ndarray:
    """Ship supply to demand over capacitated links, sharing shortages pro rata.

    ``supply`` is [..., Z] (sources), ``demand`` [..., B] (sinks), ``link_cap``
    [..., Z, B] (t that may pass each link; 0 closes it, ``inf`` leaves it open).
    Each round every source offers its remaining supply to the links it serves in
    proportion to what they can still take, ``offer_zb = w_zb * min(1, s_z / sum_b w_zb)``
    with ``w_zb = min(cap_zb, d_b)``, and every sink accepts offers up to its remaining
    demand, scaling all offers by the same factor. Rounds repeat until nothing more
    moves. This is proportional sharing, as decentralised buyers and sellers do, not a
    planner's maximum flow: where a ban leaves a sink with few sources it can end a
    little short while a source it cannot reach still holds stock.

    With a single source the result is closed-form: each sink gets
    ``min(d_b, S * d_b / sum(d))``. Returns the flow [..., Z, B]; it never exceeds
    a source's supply, a sink's demand or a link's capacity.
    """
    remaining_supply = np.array(supply, dtype=float)
    remaining_demand = np.array(demand, dtype=float)
    remaining_cap = np.array(link_cap, dtype=float)
    flow = np.zeros(remaining_cap.shape)
    if not (remaining_supply.any() and remaining_demand.any() and remaining_cap.any()):
        return flow
    for _ in range(rounds):
        wish = np.minimum(remaining_cap, remaining_demand[..., None, :])
        wish_total = wish.sum(axis=-1)
        with np.errstate(all="ignore"):
            share = np.where(wish_total > 0, np.minimum(1.0, remaining_supply / wish_total), 0.0)
        offer = wish * share[..., None]
        received = offer.sum(axis=-2)
        with np.errstate(all="ignore"):
            accept = np.where(received > remaining_demand, remaining_demand / received, 1.0)
        moved = offer * accept[..., None, :]
        flow += moved
        remaining_supply = np.maximum(remaining_supply - moved.sum(axis=-1), 0.0)
        remaining_demand = np.maximum(remaining_demand - moved.sum(axis=-2), 0.0)
        remaining_cap = remaining_cap - moved
        if moved.sum() <= TOLERANCE_T or remaining_demand.sum() <= TOLERANCE_T:
            break
    return flow


@dataclass
class Clearing:
    """One month's trade in every element."""

    contract_flow: np.ndarray  # [E, R, B] t delivered under contract, seller region -> buyer
    spot_flow: np.ndarray  # [E, R, B] t bought on the spot market
    export_cap_left: np.ndarray  # [E, R] t the region could still have exported

    @cached_property
    def flow(self) -> np.ndarray:
        return self.contract_flow + self.spot_flow

    @property
    def received(self) -> np.ndarray:
        """[E, B] t each buyer received."""
        return self.flow.sum(axis=1)

    @property
    def sold(self) -> np.ndarray:
        """[E, R] t sold by each region's sellers."""
        return self.flow.sum(axis=2)


def clear_markets(
    available: np.ndarray,
    want: np.ndarray,
    contract: np.ndarray,
    buyer_region: np.ndarray,
    export_cap: np.ndarray,
    allowed: np.ndarray,
) -> Clearing:
    """Allocate every element's oxide from seller regions to buyers in four tiers.

    1. domestic contract deliveries, 2. foreign contract deliveries (they count against
    the seller region's export cap: a quota binds contracts too), 3. domestic spot
    purchases (sellers serve their own region first: a quota cannot push domestic
    buyers to the back of the queue), 4. foreign spot purchases within what is left of
    each export cap and only over links the exporter has not banned.

    ``available`` [E, R] t sellers can sell; ``want`` [E, B] t buyers want in all;
    ``contract`` [E, R, B] t due under contract from each region; ``buyer_region`` [B]
    region index of each buyer; ``export_cap`` [E, R] t a region may export (``inf``
    without a quota); ``allowed`` [E, R, R] whether region a may sell to region b.
    A contract the seller cannot deliver falls back on the spot market.
    """
    n_regions = available.shape[1]
    domestic = buyer_region[None, :] == np.arange(n_regions)[:, None]  # [R, B]
    foreign_ok = allowed[:, :, buyer_region] & ~domestic[None]  # [E, R, B]
    supply_left = np.array(available, dtype=float)
    cap_left = np.array(export_cap, dtype=float)

    def ship(demand: np.ndarray, link_cap: np.ndarray, exports: bool) -> np.ndarray:
        nonlocal supply_left, cap_left
        flow = prorata_fill(np.minimum(supply_left, cap_left) if exports else supply_left, demand, link_cap)
        supply_left = np.maximum(supply_left - flow.sum(axis=2), 0.0)
        if exports:
            cap_left = np.maximum(cap_left - flow.sum(axis=2), 0.0)
        return flow

    home_contract = contract * domestic[None]
    abroad_contract = contract * foreign_ok
    contract_flow = ship(home_contract.sum(axis=1), home_contract, exports=False)
    contract_flow += ship(abroad_contract.sum(axis=1), abroad_contract, exports=True)
    spot_want = np.maximum(want - contract_flow.sum(axis=1), 0.0)
    home_links = np.broadcast_to(np.where(domestic, np.inf, 0.0), contract.shape)
    spot_flow = ship(spot_want, home_links, exports=False)
    spot_flow += ship(spot_want - spot_flow.sum(axis=1), np.where(foreign_ok, np.inf, 0.0), exports=True)
    return Clearing(contract_flow=contract_flow, spot_flow=spot_flow, export_cap_left=cap_left)


def price_areas(
    allowed: np.ndarray,
    export_cap_left: np.ndarray,
    trade: np.ndarray,
    unmet: np.ndarray,
    leftover: np.ndarray | None = None,
) -> np.ndarray:
    """Which regions share one price this month, per element: [E, R, R] bool.

    A link a -> b is *open* when a's sellers could still ship more to b's buyers: a may
    sell to b, a's export cap is not exhausted and a's sellers have stock left
    (``leftover`` [E, R] t unsold, default: plenty), so b's price cannot stay above
    a's. When both directions are open, arbitrage ties the two prices whether or not
    anything moved. When only a -> b is open (b's own exports are capped or banned, or
    b has nothing left to sell), it ties them only if it is in use: oxide flowed a -> b
    (spot or contract), or b's buyers still wanted more. So a binding quota separates
    the exporter's domestic market into a price zone of its own (the 2010 two-tier
    price), while importers' prices stay tied to its cheaper domestic price only if
    they actually buy there. A region with nothing left to sell ties to nobody by
    itself (nobody re-exports), so a ban separates its destination unless a third
    region with stock to spare still serves it: the destination's price then rises
    with its own shortage (the 2010 embargo on Japan). Areas are the connected
    components of tied links. ``trade`` [E, R, R] t delivered between regions this
    month; ``unmet`` [E, R] t buyers in each region wanted and did not get.
    """
    n_regions = trade.shape[1]
    open_link = allowed & (export_cap_left[:, :, None] > TOLERANCE_T)
    if leftover is not None:
        open_link &= leftover[:, :, None] > TOLERANCE_T
    in_use = (trade > TOLERANCE_T) | (unmet[:, None, :] > TOLERANCE_T)
    tied = (open_link & np.swapaxes(open_link, 1, 2)) | (open_link & in_use)
    linked = tied | np.swapaxes(tied, 1, 2) | np.eye(n_regions, dtype=bool)[None]
    reach = linked.astype(float)
    for _ in range(int(np.ceil(np.log2(max(n_regions, 2))))):
        reach = np.minimum(reach @ reach, 1.0)
    return reach > 0


def update_prices(
    price: np.ndarray,
    areas: np.ndarray,
    weight: np.ndarray,
    position: np.ndarray,
    previous_position: np.ndarray,
    demand: np.ndarray,
    reference_price: np.ndarray,
    adjustment: float,
    target_cover_months: float,
    trend_months: float,
    min_price_ratio: float,
    arbitrage_months: float = 1.0,
    markup: np.ndarray | None = None,
) -> np.ndarray:
    """Next month's posted price in every region, from inventory against a target.

    Within an area, arbitrage first pulls each region's price toward the area's weighted
    mean price, closing ``1 / arbitrage_months`` of the log gap a month (1 = at once;
    traders need months to redirect cargoes and contracts, and a quota that just stopped
    binding does not erase the export premium overnight). Then sellers' inventory rule
    (Argonne GCMat, Riddle et al. 2015) moves it: ``p' = p * exp(adjustment * gap)``,
    ``gap = (I* - I_ahead) / I*``. The
    position ``I`` is unsold stock minus unmet demand, summed over the area; sellers
    look ``trend_months`` ahead at this month's rate of change,
    ``I_ahead = I + trend_months * (I - I_previous)``, which damps the price-inventory
    cycle that a pure stock rule makes (a harmonic oscillator without it, see
    docs/ODD.md); ``I* = target cover x the area's demand``. The gap is clipped to
    [-1, 1] so one month moves the price by at most a factor ``exp(adjustment)``
    either way, and it never falls below ``min_price_ratio`` of its reference (sellers
    stop cutting near separation cost).

    ``price``, ``weight``, ``position``, ``previous_position``, ``demand`` are [E, R];
    ``areas`` [E, R, R]; ``reference_price`` [E]. A region without any weight takes its
    area's price unchanged. ``markup`` [E, R] (default 1) is a price wedge arbitrage
    keeps: a region buying across an export tax pays its area's price times the markup,
    so arbitrage works on ``price / markup`` and puts the markup back.
    """
    markup = np.ones_like(price) if markup is None else markup
    base = price / markup
    member = areas.astype(float)
    area_weight = np.einsum("eab,eb->ea", member, weight)
    weighted = np.einsum("eab,eb->ea", member, weight * base)
    mean = np.where(area_weight > 0, weighted / np.where(area_weight > 0, area_weight, 1.0), base)
    converged = markup * base * (mean / base) ** (1.0 / max(arbitrage_months, 1.0))
    ahead = position + trend_months * (position - previous_position)
    area_ahead = np.einsum("eab,eb->ea", member, ahead)
    target = target_cover_months * np.einsum("eab,eb->ea", member, demand)
    with np.errstate(all="ignore"):
        gap = np.where(target > 0, (target - area_ahead) / target, np.where(area_ahead > 0, -1.0, 0.0))
    gap = np.clip(gap, -1.0, 1.0)
    floor = min_price_ratio * reference_price[:, None]
    return np.maximum(converged * np.exp(adjustment * gap), floor)
