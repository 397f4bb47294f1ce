"""Export rules as the state of every trade link, product by product, contract
deliveries and where what a region bought was made: pure numpy, no Mesa.

``abm.policy.export_rules`` states rules per element (a Dy quota, a ban on Dy and Tb to
Japan, a 25 % tax on Dy oxide); here they reach every product whose REO content is at
least ``abm.chain.COVERED_SHARE`` that element: its oxide, its metal, the magnet grades
that contain it. Export taxes reach oxides and metals only (China's 2007-2014 export
taxes were on rare earth oxides, metals and compounds; shared/domain/facts.md). Shapes
use P products, E elements, R regions; t per month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.chain import COVERED_SHARE, Chain
from abm.policy import ExportRules

TAXED_STAGES = ("oxide", "metal")
# Tonnes below this are numerical dust, not trade.
TOLERANCE_T = 1e-9


@dataclass(frozen=True)
class ProductRules:
    """This month's rules per product: ``quota_cut`` [R, P] share of reference exports
    withheld; ``banned`` [R, P, R] exporter, product, destination; ``tonnage_quotas``
    (region, t REO / month, [P] products covered together); ``export_tax`` [R, P];
    ``licences`` (region, approval share, delay months, [P] products covered, [R]
    destinations covered, denied end uses); ``re_export_banned`` [R, P] products of the exporter's
    origin that third countries may not re-export to the destinations it bans or
    licenses."""

    quota_cut: np.ndarray
    banned: np.ndarray
    tonnage_quotas: tuple[tuple[int, float, np.ndarray], ...]
    export_tax: np.ndarray
    licences: tuple[tuple[int, float, int, np.ndarray, np.ndarray, tuple[str, ...]], ...]
    re_export_banned: np.ndarray


def element_reach(chain: Chain) -> np.ndarray:
    """[P, E] whether a rule on element e reaches product p."""
    total = chain.content.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, chain.content / np.where(total > 0, total, 1.0), 0.0)
    return share >= COVERED_SHARE


def product_rules(rules: ExportRules, reach: np.ndarray, taxed: np.ndarray, stage: np.ndarray) -> ProductRules:
    """Per-element ``rules`` as per-product rules: a product takes the strictest rule on
    any element it carries (``reach`` [P, E]); ``taxed`` [P] marks the products export
    taxes apply to; a licence covers the products of its stages (``stage`` [P] names)."""
    cut = (rules.quota_cut[:, None, :] * reach[None]).max(axis=2)  # [R, P]
    banned = (rules.banned[:, None, :, :] & reach[None, :, :, None]).any(axis=2)  # [R, P, R]
    tax = (rules.export_tax[:, None, :] * reach[None]).max(axis=2) * taxed[None]
    tonnage = tuple((row, tonnes, (reach & covered[None]).any(axis=1)) for row, tonnes, covered in rules.tonnage_quotas)
    re_export_banned = (rules.re_export_banned[:, None, :] & reach[None]).any(axis=2)  # [R, P]
    licences = []
    for licence in rules.licences:
        covered = (reach & licence.elements[None]).any(axis=1) & np.isin(stage, licence.stages)
        licences.append((licence.region, licence.approval_share, licence.delay_months, covered, licence.destinations,
                         licence.denied_end_uses))
        if licence.restrict_re_export:
            re_export_banned[licence.region] |= covered
    return ProductRules(quota_cut=cut, banned=banned, tonnage_quotas=tonnage, export_tax=tax, licences=tuple(licences),
                        re_export_banned=re_export_banned)


def deliver_contracts(volume: np.ndarray, stock: np.ndarray, export_cap: np.ndarray, open_link: np.ndarray) -> np.ndarray:
    """[P, R, R] t delivered under contract from origin a to destination b this month.

    ``volume`` [P, R, R] t due; ``stock`` [P, R] t the origin's sellers hold;
    ``export_cap`` [P, R] t the origin may still export; ``open_link`` [P, R, R] whether a
    may sell to b. Home contracts are served first, then contracts abroad within the
    export cap (a quota binds contracts too); an origin short of stock or quota serves
    its contracts pro rata. A contract the origin cannot serve falls back on the spot
    market."""
    home = np.eye(volume.shape[1], dtype=bool)[None]
    due_home = np.where(home, volume, 0.0)
    due_abroad = np.where(~home & open_link, volume, 0.0)
    delivered = _prorate(due_home, stock)
    left = np.maximum(stock - delivered.sum(axis=2), 0.0)
    return delivered + _prorate(due_abroad, np.minimum(left, export_cap))


def deliver_licensed(approved: np.ndarray, stock: np.ndarray, export_cap: np.ndarray, bids: np.ndarray) -> np.ndarray:
    """[P, R, R] t shipped under export licence from origin a to destination b this month.

    ``approved`` [P, R, R] t the licences grant (0 where none applies); ``stock`` [P, R]
    t the origin's sellers hold after contracts; ``export_cap`` [P, R] t it may still
    export; ``bids`` [P, R] t the destination's buyers want. A licensed shipment goes to
    the buyers who applied, before the spot market: a destination takes at most what it
    bids, an origin short of stock or quota ships its licences pro rata."""
    into = approved.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        wanted = np.where(into > bids, bids / np.where(into > 0, into, 1.0), 1.0)
    return _prorate(approved * wanted[:, None, :], np.minimum(stock, export_cap))


def _prorate(due: np.ndarray, available: np.ndarray) -> np.ndarray:
    """[P, R, R] ``due`` from each origin, scaled down pro rata where it exceeds the
    origin's ``available`` [P, R]."""
    total = due.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > available, available / np.where(total > 0, total, 1.0), 1.0)
    return due * share[:, :, None]


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


def provenance(sold: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """[P, R, R] share of what each region's buyers got (axis 1) that was made in each
    region (axis 2): its own sellers' sales count as made there, imports carry the mix of
    the region they came from, so a re-export keeps its maker. ``sold`` [P, R] t sold by
    each region's sellers, at home and abroad; ``flow`` [P, R, R] t shipped a -> b. Each
    region's pool (its sales and its imports) is one mix, which its exports carry: the
    mixes solve ``mix_b = (own_b + sum_a flow_ab mix_a) / (sold_b + imports_b)`` exactly
    (one small linear system per product); a region that had nothing gets a row of 0."""
    n = sold.shape[1]
    own = sold[:, :, None] * np.eye(n)[None]
    supply = sold + flow.sum(axis=1)  # [P, R] what each region had
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(supply > 0, 1.0 / np.where(supply > 0, supply, 1.0), 0.0)
    system = np.eye(n)[None] - inv[:, :, None] * np.swapaxes(flow, 1, 2)  # [P, b, a]
    return np.linalg.solve(system, inv[:, :, None] * own)
