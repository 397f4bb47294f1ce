"""Private investment in new mines, separation, metal and magnet plants (docs/ODD.md §7.23).

An investment unit is a stage of one region: the mines of one deposit type in one
nation, or the separation, metal or magnet plants of one region. Each month investors
in every unit, inside and outside the dominant exporter alike:

1. see this month's operating margin per kg of capacity (revenue less cash cost:
   inputs at their price in the region plus the stage's conversion cost,
   abm/data/stages.csv) and expect its exponential average over
   ``expectation_months`` (a trailing average), as they do the cash cost;
2. commit new capacity when the expected margin exceeds the capital charge (the
   annuity of the stage's capex at ``hurdle_rate`` over ``life_years``) and the unit
   runs at least ``min_utilisation`` of its capacity (smoothed alike: where capacity
   stands idle a new plant would find no feed or buyers): a share
   ``min(max_share_per_year, response x excess)`` a year of the unit's capacity, where
   excess = expected price / full cost - 1 and full cost = cash cost + capital charge;
3. build each commitment for the stage's ``lead_months`` and ramp it up over its
   ``ramp_months`` (stages.csv);
4. abandon a project under construction after ``abandon_months`` consecutive months in
   which the expected margin is below the capital charge of the capex still to be
   spent (its share of the build still ahead): at the start of a build the test is
   full cost, at the end cash cost, as sunk capex no longer counts.

A price floor in force tops up the covered oxides' price in its region to the floor:
it raises the expected price of that region's separators (who sell the oxides) and
mines (whose concentrate holds them), as ``RareEarthModel._produce`` raises the
mines' output. Private projects cost the government nothing: they never enter
``policy_cost`` (the floor's top-up does, ``abm.programmes``).

New capacity online is added to the unit's mines (``ExportingNation.invested_capacity``)
or spread over its plants in proportion to their size (``Converters.invested``), so a
separation plant's new capacity takes its feed mix and yields its oxides.

Shapes: U units, J projects, P products, R regions, K plants, D deposits; capacity
t/month (mines t REO, separation t REO of concentrate, metal and magnet t of output),
prices and margins USD/kg of capacity's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abm.agents.converter import MAGNET, METAL, SEPARATION, Converters, ramp_share
from abm.chain import Chain
from abm.scenario import InvestmentParameters, Scenario

MINE = "concentrate"
# Stages in the order of the records (``Investors.labels``).
INVESTED_STAGES = (MINE, SEPARATION, METAL, MAGNET)
# kg per t: capex is USD per t/yr of capacity, margins USD/kg.
KG_PER_T = 1000.0


def capital_charge(capex_usd_per_t_per_year: np.ndarray, rate: float, life_years: float) -> np.ndarray:
    """USD/kg of output a year: the annuity that repays ``capex`` (USD per t/yr of
    capacity) at ``rate`` over ``life_years``."""
    annuity = rate / (1.0 - (1.0 + rate) ** -life_years)
    return np.asarray(capex_usd_per_t_per_year, dtype=float) * annuity / KG_PER_T


@dataclass(frozen=True)
class Floor:
    """A price floor in force this month: ``usd_per_kg`` on the oxides ``covered`` [E] in region ``region``."""

    region: int
    covered: np.ndarray
    usd_per_kg: float


class Investors:
    """The investment units of one run and their projects.

    Units: ``stage`` [U] index into ``INVESTED_STAGES``, ``region`` [U]; mine units
    also ``nation`` (index into the model's nations) and ``deposit``; plant units a
    weight over plants ``weight`` [U, K] (their share of the unit's plants' size).
    Projects: ``unit``, ``capacity`` t/month, ``online`` month of first output,
    ``lead`` months, ``ramp`` months, ``abandoned``, ``weak`` months in a row under the
    abandonment test.
    """

    def __init__(self, spec: Scenario, chain: Chain, plants: Converters, nations: list, regions: tuple[str, ...]) -> None:
        self.params: InvestmentParameters = spec.investment
        self.chain = chain
        data = chain.data
        self._oxides, self._concentrates = chain.stage_index("oxide"), chain.stage_index("concentrate")
        self._separation = data.separation[np.ix_(self._oxides, self._concentrates)]  # [E, D] t oxide per t REO
        units: list[tuple[int, int, int, int]] = []  # stage, region, nation, deposit
        for x, nation in enumerate(nations):
            planned = np.zeros(len(nation.mine_capacity))
            for deposit, capacity, _, _ in nation._projects:
                planned[deposit] += capacity
            for d in np.flatnonzero(nation.mine_capacity + planned > 0):
                units.append((0, nation.region_index, x, int(d)))
        size = np.where(plants.planned, plants.planned_capacity, plants.capacity)
        for s, stage in enumerate(INVESTED_STAGES[1:], start=1):
            for r in range(len(regions)):
                if (size[(plants.stage == stage) & (plants.region == r)] > 0).any():
                    units.append((s, r, -1, -1))
        self.stage, self.region, self.nation, self.deposit = (np.array(column, dtype=int) for column in zip(*units, strict=True))
        self.mines = self.stage == 0
        in_unit = (plants.stage[None, :] == np.array(INVESTED_STAGES)[self.stage][:, None]) & (
            plants.region[None, :] == self.region[:, None]) & ~self.mines[:, None]
        weight = np.where(in_unit, size[None, :], 0.0)
        self.weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)  # [U, K]
        self._n_nations, self._n_deposits = len(nations), len(self._concentrates)
        stage_name = np.array(INVESTED_STAGES)[self.stage]
        self.lead = np.array([data.lead_months[s] for s in stage_name], dtype=int)  # [U]
        self.ramp = np.array([data.ramp_months[s] for s in stage_name], dtype=int)
        capex = {MINE: spec.domestic_mining.capex_usd_per_t_per_year, SEPARATION: spec.refining.capex_usd_per_t_per_year,
                 METAL: self.params.metal_capex_usd_per_t_per_year, MAGNET: self.params.magnet_capex_usd_per_t_per_year}
        self.charge = capital_charge(np.array([capex[s] for s in stage_name]), self.params.hurdle_rate,
                                     self.params.life_years)  # [U] USD/kg
        self.labels = tuple(f"{regions[r]}:{INVESTED_STAGES[s]}" for s, r in self._label_keys())
        self._label_of = self._label_index()
        self.expected_margin: np.ndarray | None = None  # [U] USD/kg, set at the first month
        self.expected_cash = np.zeros(len(self.stage))
        self.utilisation = np.zeros(len(self.stage))  # [U] share of capacity run, smoothed as the margin
        self.unit = np.zeros(0, dtype=int)
        self.capacity = np.zeros(0)
        self.online = np.zeros(0, dtype=int)
        self.abandoned = np.zeros(0, dtype=bool)
        self.weak = np.zeros(0, dtype=int)
        zeros = np.zeros(len(self.labels))
        # t/yr of capacity by label: committed and abandoned this month, under construction, online
        self.committed, self.abandoned_now, self.building, self.running = zeros, zeros.copy(), zeros.copy(), zeros.copy()

    def _label_keys(self) -> list[tuple[int, int]]:
        return sorted({(int(s), int(r)) for s, r in zip(self.stage, self.region, strict=True)}, key=lambda k: (k[1], k[0]))

    def _label_index(self) -> np.ndarray:
        keys = self._label_keys()
        return np.array([keys.index((int(s), int(r))) for s, r in zip(self.stage, self.region, strict=True)])

    # ------------------------------------------------------------------ margins
    def margins(self, price: np.ndarray, plants: Converters, region_onehot: np.ndarray,
                floor: Floor | None) -> tuple[np.ndarray, np.ndarray]:
        """[U] USD/kg of capacity's output: this month's operating margin (revenue less
        cash cost) and cash cost in each unit, at ``price`` [P, R] (the region's
        clearing prices) with a floor's top-up."""
        chain, data = self.chain, self.chain.data
        cost = data.conversion_cost
        oxide_price = price[self._oxides]  # [E, R]
        top_up = np.zeros_like(oxide_price)
        if floor is not None:
            top_up[:, floor.region] = np.maximum(floor.usd_per_kg - oxide_price[:, floor.region], 0.0) * floor.covered
        margin, cash = np.zeros(len(self.stage)), np.zeros(len(self.stage))
        m, r = self.mines, self.region
        conc = self._concentrates[self.deposit[m]]
        cash[m] = cost[conc]
        margin[m] = price[conc, r[m]] + (self._separation.T @ top_up)[self.deposit[m], r[m]] - cost[conc]

        sep = self.stage == 1
        yielding = plants.yielding_share(region_onehot)  # [P, R]
        value = chain.willingness_to_pay(price, yielding=yielding)  # [P, R]: a concentrate's at r, less separation
        feed = self.weight[sep] @ plants.feed_share[:, self._concentrates]  # [u, D] share of REO fed
        feed = feed / np.maximum(feed.sum(axis=1, keepdims=True), 1e-12)
        rs = r[sep]
        oxides_per_feed = feed @ self._separation.T  # [u, E] t oxide per t REO
        floor_gain = (oxides_per_feed * (yielding[self._oxides][:, rs] * top_up[:, rs]).T).sum(axis=1)
        cash[sep] = (feed * price[self._concentrates][:, rs].T).sum(axis=1) + oxides_per_feed @ cost[self._oxides]
        margin[sep] = (feed * (value[self._concentrates][:, rs] - price[self._concentrates][:, rs]).T).sum(axis=1) + floor_gain

        made = self.stage >= 2
        input_cost = chain.input_cost(price) + cost[:, None]  # [P, R] cash cost of each product where made
        sold = self.weight[made] @ plants.sales  # [u, P] t/month the unit's plants sell
        stage_of = np.array(INVESTED_STAGES)[self.stage[made]]
        makes = np.array(data.stage)[None, :] == stage_of[:, None]  # [u, P]
        own = np.where(makes, sold, 0.0)  # what the unit sells of its stage, else the world's mix of it
        mix = np.where(own.sum(axis=1, keepdims=True) > 0, own, np.where(makes, plants.sales.sum(axis=0)[None, :], 0.0))
        mix = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)
        rm = r[made]
        cash[made] = (mix * input_cost[:, rm].T).sum(axis=1)
        margin[made] = (mix * (price[:, rm] - input_cost[:, rm]).T).sum(axis=1)
        return margin, cash

    def unit_capacity(self, plants: Converters, nations: list) -> tuple[np.ndarray, np.ndarray]:
        """[U] t/month each unit can run now (its nation's mines of its deposit: existing,
        projects and investment; or its plants' capacity) and [U] t/month it ran this
        month (mined; concentrate separated; metal or magnets made)."""
        in_unit = self.weight > 0
        capacity = in_unit @ plants.capacity
        ran = np.where(plants.separating, plants.used.sum(axis=1), plants.produced.sum(axis=1))
        used = in_unit @ ran
        for u in np.flatnonzero(self.mines):
            nation = nations[self.nation[u]]
            d = self.deposit[u]
            capacity[u] = nation.mine_capacity[d] + nation.project_capacity[d] + nation.invested_capacity[d]
            used[u] = nation.output[d]
        return capacity, used

    # --------------------------------------------------------------- decisions
    def step(self, month: int, margin: np.ndarray, cash: np.ndarray, capacity: np.ndarray, used: np.ndarray) -> None:
        """Update expectations with this month's ``margin`` and ``cash`` [U] USD/kg and
        utilisation (``used`` [U] t/month run of ``capacity`` [U] t/month, each unit's
        capacity now), abandon weak projects, commit new ones and set the records."""
        params = self.params
        utilisation = np.where(capacity > 0, used / np.maximum(capacity, 1e-12), 0.0)
        if self.expected_margin is None:
            self.expected_margin, self.expected_cash, self.utilisation = margin.copy(), cash.copy(), utilisation
        else:
            memory = params.expectation_months
            self.expected_margin = self.expected_margin + (margin - self.expected_margin) / memory
            self.expected_cash = self.expected_cash + (cash - self.expected_cash) / memory
            self.utilisation = self.utilisation + (utilisation - self.utilisation) / memory
        building = ~self.abandoned & (self.online > month + 1)
        ahead = np.clip((self.online - month - 1) / np.maximum(self.lead[self.unit], 1), 0.0, 1.0)
        weak = building & (self.expected_margin[self.unit] < ahead * self.charge[self.unit])
        self.weak = np.where(weak, self.weak + 1, 0)
        dropped = weak & (self.weak >= params.abandon_months)
        self.abandoned = self.abandoned | dropped
        self.abandoned_now = self._by_label(self._per_unit(np.where(dropped, self.capacity, 0.0)))
        full_cost = np.maximum(self.expected_cash + self.charge, 1e-12)
        excess = (self.expected_margin - self.charge) / full_cost
        share = np.clip(params.response * excess, 0.0, params.max_share_per_year)  # per year
        share = np.where(self.utilisation >= params.min_utilisation, share, 0.0)  # idle capacity first
        new = share / 12.0 * capacity  # t/month committed
        fresh = np.flatnonzero(new > 0)
        self.unit = np.concatenate([self.unit, fresh])
        self.capacity = np.concatenate([self.capacity, new[fresh]])
        self.online = np.concatenate([self.online, month + 1 + self.lead[fresh]])
        self.abandoned = np.concatenate([self.abandoned, np.zeros(len(fresh), dtype=bool)])
        self.weak = np.concatenate([self.weak, np.zeros(len(fresh), dtype=int)])
        self.committed = self._by_label(np.bincount(fresh, new[fresh], minlength=len(self.stage)))
        self.building = self._by_label(self._per_unit(np.where(~self.abandoned & (self.online > month + 1), self.capacity, 0.0)))
        self.running = self._by_label(self.online_capacity(month + 1))

    def online_capacity(self, month: int) -> np.ndarray:
        """[U] t/month of new capacity running in ``month`` (ramped, abandoned projects not)."""
        share = ramp_share(month, self.online, self.ramp[self.unit])
        return self._per_unit(np.where(self.abandoned, 0.0, self.capacity * share))

    def mine_capacity(self, month: int) -> np.ndarray:
        """[X, D] t REO/month of new mines running in ``month``, by nation and deposit."""
        out = np.zeros((self._n_nations, self._n_deposits))
        np.add.at(out, (self.nation[self.mines], self.deposit[self.mines]), self.online_capacity(month)[self.mines])
        return out

    def plant_capacity(self, month: int) -> np.ndarray:
        """[K] t/month of new capacity running in ``month`` at each plant."""
        return self.online_capacity(month) @ self.weight

    def _per_unit(self, per_project: np.ndarray) -> np.ndarray:
        return np.bincount(self.unit, per_project, minlength=len(self.stage))

    def _by_label(self, per_unit: np.ndarray) -> np.ndarray:
        """t/yr by record label of a [U] t/month array."""
        return np.bincount(self._label_of, 12.0 * per_unit, minlength=len(self.labels))
