"""RareEarthModel: the global rare earth supply chain under trade policy, month by month.

Builds exporting nations (mines and export rules), the processing plants of every stage
(separation, metal making, magnet making: ``abm.agents.converter``), the end users that
buy magnets or oxides where they are (``abm.agents.end_user``), recyclers and strategic
stockpiles from the calibration (``abm/data``) and a scenario, with the exporter's
domestic supply policy (``abm.domestic_policy``: quotas, a state reserve, enforcement),
and steps them in the order of docs/ODD.md §3: export rules and the domestic policy's
quotas, mining, conversion, recycling, stockpile and state reserve decisions, purchase
plans, clearing of every product's market at once (``abm.clearing``), investment,
accounts, data collection.

Shapes use E elements, P products (``products``), R regions, X exporting nations,
K plants, B end users. Quantities are t per month (t of product; element records t of
the element's oxide), prices USD/kg.
"""

import dataclasses
import functools
from pathlib import Path

import mesa
import numpy as np
from mesa.experimental.scenarios import Scenario as MesaScenario

from abm.agents import Converter, EndUser, ExportingNation, Recycler, StateReserve, StrategicStockpile
from abm.agents.converter import MAGNET, SEPARATION, STAGES, Converters, Plant
from abm.agents.end_user import EndUsers, Substitutes
from abm.chain import BaseYear, base_year, build_chain
from abm.clearing import Bids, Clearing, Links, Offers, clear
from abm.counterfactual import CounterfactualExports
from abm.data import Calibration, load_calibration, month_index
from abm.data.chain import SupplyChain, load_supply_chain
from abm.domestic_policy import SupplyQuotas, reserve_trade
from abm.investment import Floor, Investors
from abm.levers import capped_shares
from abm.metrics import USD_PER_T_PER_USD_PER_KG
from abm.negotiation import Exposure, Talks
from abm.policy import evolve_tension, export_rules, party_fill, with_deal
from abm.programmes import Programmes
from abm.scenario import KEYWORD_PATHS, Scenario, load_scenario, setting_value
from abm.trade import (
    TAXED_STAGES, deliver_contracts, deliver_licensed, element_reach, product_rules, prorata_fill, provenance,
)

# The world market in the tidy output: importers outside the dominant exporter.
WORLD = "world"
# Region label of a world total (recycled, consumed, losses, stocks).
ALL = "all"
# Months the market runs at base-year conditions before month 0, so that month 0 starts
# from settled trade routes, prices and export records (the quota reference).
SPIN_UP_MONTHS = 12
# Buyers whose output no longer pays for an input bid at most this share of its price.
MIN_CHOKE = 1e-3

# What DataCollector records each step: model attributes, each an array with fixed
# labels. Element records are [E, K] (t of each element's oxide, in every product).
RECORDED = (
    "price", "demand", "demand_at_reference", "supply", "shortfall", "stockpile", "strategic_stock", "tension", "quota",
    "supply_by_origin", "mined", "exports", "unofficial_exports", "spend", "policy_cost",
    "recycled", "consumed", "losses", "stocks",
    "capacity_committed", "capacity_building", "capacity_online", "capacity_abandoned",
    "production_quota", "state_reserve", "reserve_purchases",
    "deal_share", "deal_price", "deal_in_force", "deal_value",
)
# The labels of a negotiating party's values (``deal_value``), USD over its horizon
# (``abm.negotiation.Values``), and the transfer of the deal in force.
DEAL_VALUES = ("importer_deal", "importer_no_deal", "exporter_deal", "exporter_no_deal", "transfer")
# Recorded arrays without an element axis.
WITHOUT_ELEMENT = ("tension", "policy_cost", "capacity_committed", "capacity_building", "capacity_online",
                   "capacity_abandoned", "production_quota", "deal_in_force", "deal_value")
# Product records, [P, R] (or [P, R, R] for flows), labelled by ``abm.run.tidy_product_series``.
PRODUCT_RECORDED = (
    "product_price", "production", "product_received", "product_shortfall", "product_unserved", "product_flow",
    "product_origin",
)


def _nation_exports(nation: ExportingNation) -> np.ndarray:
    """[E] t of each element a nation exported this month through customs (all products)."""
    return nation.model.exports[:, nation.model.exporters.index(nation.code)]


# Per-agent records, kept only with ``record_agents=True`` (Mesa agent-type reporters).
# Element arrays are [E] t (flows per month), product arrays [P] t, a plant's capacity
# t per month. Names never clash with RECORDED: mesa.batch_run puts a model's and an
# agent's values in one row.
AGENT_LABELS = ("agent_type", "region", "sector")
AGENT_REPORTERS: dict[type, dict[str, object]] = {
    ExportingNation: {"mined_t": "mined", "exports_t": _nation_exports},
    Converter: {
        "capacity_t": "capacity", "input_stock_t": "inputs", "output_stock_t": "outputs",
        "produced_t": "produced", "sold_t": "sold",
    },
    EndUser: {
        "need_t": "need", "received_t": "received", "shortfall_t": "shortfall", "stock_t": "stock",
        "spend_usd": "spend",
    },
    Recycler: {"recycled_t": "recycled", "scrap_pool_t": "scrap_pool", "sold_t": "sold"},
    StrategicStockpile: {"reserve_t": "reserve", "bought_t": "bought", "sold_t": "sold"},
    StateReserve: {"reserve_t": "reserve", "bought_t": "bought", "sold_t": "sold"},
}
# Agent types whose array records have a product axis (the others an element axis or none).
PRODUCT_AGENTS = (Converter, EndUser)


def _agent_reporters() -> dict[type, dict[str, object]]:
    """AGENT_REPORTERS with each agent's labels first (its type, region, sector)."""
    labels = {
        "agent_type": lambda agent: type(agent).__name__,
        "region": lambda agent: agent.model.regions[agent.region_index],
    }
    sector = {EndUser: "sector", Converter: "stage"}
    return {
        kind: {**labels, **({"sector": sector[kind]} if kind in sector else {}), **reporters}
        for kind, reporters in AGENT_REPORTERS.items()
    }


def resolve_scenario(scenario: Scenario | str | Path | None) -> Scenario:
    """A Scenario from a Scenario, a path to a TOML file, or None (the defaults)."""
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


class RareEarthModel(mesa.Model):
    """Monthly agent-based model of rare earth mining, separation, metal and magnet
    making, trade and use.

    Every keyword is plain, so ``mesa.batch_run`` and SolaraViz can build it: ``rng``
    (seed), ``scenario`` (path or Scenario), overrides of the scenario's shock
    (``horizon_months``, ``quota_cut``, ``shock_start``, ``shock_months``,
    ``tension_volatility``) and the levers (``domestic_mining`` t/yr,
    ``permit_delay_months``, ``refining_capacity`` t/yr, ``refining_jv``,
    ``partnership_share``, ``substitution_rd`` USD/yr, ``recycling_rate``,
    ``recycling_subsidy`` USD/kg, ``stockpile_months``, ``contract_share``,
    ``max_origin_share``, ``agreement``, ``price_floor`` USD/kg) and ``negotiation``
    (on/off: ``abm.negotiation``). An override is
    validated like the same key in a file; None keeps the scenario's value.
    ``record_agents=True`` also records every agent each month (``AGENT_REPORTERS``; see
    ``abm.run.tidy_agent_series``); it is a recording switch, not a scenario setting, and
    off by default so the monthly step does no extra work.

    Two scenarios, not to be confused: ``spec`` is this project's resolved
    ``abm.Scenario`` (the file or object given as ``scenario=``, with the keyword
    overrides applied): what the run simulates. ``scenario`` is Mesa's
    (``mesa.experimental.scenarios.Scenario``) and carries this model's keywords with the
    values the run used: ``rng``, ``scenario`` (as given), ``record_agents`` and every
    override keyword at its effective value (``model.scenario.quota_cut`` is the cut the
    run used, from the keyword or else from the file).
    """

    def __init__(
        self,
        rng: int | np.random.Generator | None = None,
        scenario: Scenario | str | Path | None = None,
        horizon_months: int | None = None,
        quota_cut: float | None = None,
        shock_start: int | None = None,
        shock_months: int | None = None,
        tension_volatility: float | None = None,
        domestic_mining: float | None = None,
        permit_delay_months: int | None = None,
        refining_capacity: float | None = None,
        refining_jv: bool | None = None,
        partnership_share: float | None = None,
        substitution_rd: float | None = None,
        recycling_rate: float | None = None,
        recycling_subsidy: float | None = None,
        stockpile_months: float | None = None,
        contract_share: float | None = None,
        max_origin_share: float | None = None,
        agreement: bool | None = None,
        price_floor: float | None = None,
        negotiation: bool | None = None,
        record_agents: bool = False,
    ) -> None:
        spec = resolve_scenario(scenario).with_overrides(
            horizon_months=horizon_months, quota_cut=quota_cut, shock_start=shock_start,
            shock_months=shock_months, tension_volatility=tension_volatility,
            domestic_mining=domestic_mining, permit_delay_months=permit_delay_months,
            refining_capacity=refining_capacity, refining_jv=refining_jv, partnership_share=partnership_share,
            substitution_rd=substitution_rd, recycling_rate=recycling_rate, recycling_subsidy=recycling_subsidy,
            stockpile_months=stockpile_months, contract_share=contract_share, max_origin_share=max_origin_share,
            agreement=agreement, price_floor=price_floor, negotiation=negotiation,
        )
        keywords = {name: setting_value(spec, name) for name in KEYWORD_PATHS}
        mesa_scenario = MesaScenario(rng=rng, scenario=scenario, record_agents=record_agents, **keywords)
        super().__init__(rng=rng, scenario=mesa_scenario)
        self.spec = spec
        self.record_agents = record_agents
        calibration = load_calibration(self.spec.base_year)
        data = load_supply_chain(self.spec.base_year)
        self.chain = build_chain(data, calibration)
        self.elements = calibration.elements
        self.regions = calibration.regions
        self.products = self.chain.products
        self.product_stage = data.stage
        self.reference_price = calibration.reference_price  # [E] USD/kg of oxide
        self.product_reference = self.chain.reference_price  # [P] USD/kg
        self.deposits = calibration.deposits
        self.tension_pairs = self.spec.tension.pairs
        self.month = 0
        self.market = self.spec.market
        # Levers draw from their own stream, seeded by one draw that every run makes, so
        # switching a lever never shifts the random numbers of the rest of the model.
        self.programmes = Programmes(self.spec, np.random.default_rng(self.rng.integers(2**63)))
        talks = self.spec.negotiation
        self.talks = Talks(talks, self.spec.tension.mean) if talks.enabled else None
        self.negotiating_party = ("+".join(talks.importers),) if talks.enabled else ()
        self._reach = element_reach(self.chain)
        self._stage = np.array(data.stage)
        self._taxed = np.isin(self._stage, TAXED_STAGES)
        # What percentage cuts and licences are measured against; None in that counterfactual run itself.
        self.counterfactual: CounterfactualExports | None = CounterfactualExports()
        self._oxides = self.chain.stage_index("oxide")
        self._concentrates = self.chain.stage_index("concentrate")
        self._magnets = self.chain.stage_index("magnet")
        self._made_products = np.concatenate([self.chain.stage_index("metal"), self._magnets])
        self.base_price = self._base_price()
        self._build_nations(calibration)
        self._build_plants(calibration, data)
        base = base_year(calibration, self.chain, self.market.separation_yield, self.market.swarf_recovery,
                         self.converters.separated_share(data.separation)[self._oxides])
        self._start_plants(self.converters, base)
        self.investors = Investors(self.spec, self.chain, self.converters, self.nations, self.regions)
        self._build_end_users(calibration, data, base)
        self._bought_by_end_users = self.end_users.base_need.sum(axis=0) > 0  # [P]
        self._build_recyclers()
        self._build_stockpiles()
        self._build_domestic_policy()
        self._init_state()
        self._spin_up()
        self.datacollector = mesa.DataCollector(
            model_reporters={name: name for name in RECORDED + PRODUCT_RECORDED},
            agenttype_reporters=_agent_reporters() if record_agents else None,
        )
        self.datacollector.collect(self)

    # ----------------------------------------------------------------- set-up
    def _base_price(self) -> np.ndarray:
        """[P, R] prices before the spin-up: the reference everywhere, except inside an
        exporter that taxes its exports from month 0, where sellers net the tax."""
        _, rules = self._product_rules(0, np.full(len(self.spec.tension.pairs), self.spec.tension.mean))
        return self.product_reference[:, None] / (1.0 + rules.export_tax.T)

    def _product_rules(self, month: int, tension: np.ndarray, guaranteed_share: float = 0.0,
                       negotiate: bool = False) -> tuple:
        """This month's export rules, per element (``ExportRules``) and per product
        (``ProductRules``); a counterfactual run's leave out percentage cuts and licences.
        ``negotiate``: the negotiating party reviews its deal on them first (``_negotiate``)."""
        rules = export_rules(self.spec, month, tension, self.regions, self.elements, self.deposits,
                             guaranteed_share=guaranteed_share, counterfactual=self.counterfactual is None,
                             trailing_exports=self._recent_exports())
        if negotiate and self.talks is not None:
            rules = self._negotiate(rules, tension)
        return rules, product_rules(rules, self._reach, self._taxed, self._stage)

    def _recent_exports(self) -> np.ndarray:
        """[R, E] t/month of each element each region exported over the last twelve months
        (``ExportingNation.export_reference``); zero before the nations are built."""
        recent = np.zeros((len(self.regions), len(self.elements)))
        for nation in getattr(self, "nations", ()):
            recent[nation.region_index] = nation.export_reference @ self.chain.content
        return recent

    def _build_nations(self, calibration: Calibration) -> None:
        """Every region that mines or separates, with its mines, their projects and a
        domestic-mining lever's mines; its export records start empty (the spin-up fills them)."""
        index = {r: i for i, r in enumerate(self.regions)}
        spec = self.spec
        mines: dict[str, np.ndarray] = {}
        for nation, deposit, capacity in calibration.mines:
            mines.setdefault(nation, np.zeros(len(self.deposits)))
            mines[nation][self.deposits.index(deposit)] += capacity
        producers = set(calibration.producers)
        if spec.domestic_mining.tonnes_per_year > 0:
            producers.add(spec.domestic_mining.region)
        reo = self.chain.content.sum(axis=1)
        for nation in sorted(producers, key=index.get):
            built = ExportingNation(
                self, nation, index[nation], mines.get(nation, np.zeros(len(self.deposits))) / 12.0,
                calibration.basket, self.reference_price, np.zeros(len(self.products)), reo,
            )
            for project in calibration.projects:
                if project.kind == "mine" and project.nation == nation:
                    built.plan(self.deposits.index(project.target), project.capacity_t_per_year / 12.0,
                               month_index(project.online, spec.start_year), project.ramp_months)
            lever = spec.domestic_mining
            if lever.tonnes_per_year > 0 and nation == lever.region:
                built.plan(self.deposits.index(lever.deposit), lever.tonnes_per_year / 12.0,
                           self.programmes.mine_online, lever.ramp_months)
        self.nations = self.agents_by_type[ExportingNation]

    def _feed_shares(self, calibration: Calibration) -> dict[str, np.ndarray]:
        """[D] share of each deposit's concentrate in the feed of a separation plant that
        takes its feed first from each nation (refiners.csv ``feed_priority``): the
        base-year allocation of every nation's concentrate, priority source first, then
        pro rata (a plant whose source cannot fill it takes what is left anywhere); a
        plant to be fed by a nation whose mines are all projects (Lynas's Malaysian plant
        and Mount Weld in 2009) takes those projects' concentrate."""
        nations = sorted({n for n, _, _ in calibration.mines})
        supply = np.zeros((len(nations), len(self.deposits)))
        for nation, deposit, capacity in calibration.mines:
            supply[nations.index(nation), self.deposits.index(deposit)] += capacity
        refiners = calibration.refiners
        wanted = np.array([capacity for _, capacity, _ in refiners])
        priority = np.array([[feed == n for n in nations] for _, _, feed in refiners]).T  # [N, refiners]
        total = supply.sum(axis=1)
        first = prorata_fill(total, wanted, np.where(priority, np.inf, 0.0))
        second = prorata_fill(total - first.sum(axis=1), wanted - first.sum(axis=0), np.full(priority.shape, np.inf))
        taken = first + second  # [N, refiners] t REO
        with np.errstate(divide="ignore", invalid="ignore"):
            mix = np.where(total[:, None] > 0, supply / total[:, None], 0.0)  # [N, D]
        feed = taken.T @ mix  # [refiners, D]
        shares = {}
        world = supply.sum(axis=0) / supply.sum()
        for (_, _, source), row in zip(refiners, feed, strict=True):
            shares[source] = row / row.sum() if row.sum() > 0 else world
        for nation in nations:
            shares.setdefault(nation, supply[nations.index(nation)] / total[nations.index(nation)])
        planned: dict[str, np.ndarray] = {}  # nations whose mines are all projects: their projects' deposits
        for project in calibration.projects:
            if project.kind == "mine" and project.nation not in nations:
                planned.setdefault(project.nation, np.zeros(len(self.deposits)))
                planned[project.nation][self.deposits.index(project.target)] += project.capacity_t_per_year
        for nation, capacity in planned.items():
            shares.setdefault(nation, capacity / capacity.sum())
        shares.setdefault("world", world)
        return shares

    def _concentrate_share(self, deposit_share: np.ndarray) -> np.ndarray:
        share = np.zeros(len(self.products))
        share[self._concentrates] = deposit_share
        return share

    def _build_plants(self, calibration: Calibration, data: SupplyChain) -> None:
        """Separation plants (refiners.csv and refinery projects, each yielding the oxides
        of its nation's separation_scope.csv rows from their months; a refining lever's
        plant, which yields every oxide), metal and magnet plants (plants.csv,
        plant_projects.csv); ``_start_plants`` gives them their base-year output."""
        index = {r: i for i, r in enumerate(self.regions)}
        spec, feeds = self.spec, self._feed_shares(calibration)
        plants = [
            Plant(SEPARATION, index[n], capacity / 12.0, self._concentrate_share(feeds[feed]),
                  yields_from=self._yields_from(data, n))
            for n, capacity, feed in calibration.refiners
        ]
        for project in calibration.projects:
            if project.kind == "refinery":
                feed = feeds.get(project.target, feeds["world"])
                plants.append(Plant(SEPARATION, index[project.nation], project.capacity_t_per_year / 12.0,
                                    self._concentrate_share(feed), month_index(project.online, spec.start_year),
                                    project.ramp_months, self._yields_from(data, project.nation)))
        if spec.refining.tonnes_per_year > 0:
            region = spec.refining.region
            plants.append(Plant(SEPARATION, index[region], spec.refining.tonnes_per_year / 12.0,
                                self._concentrate_share(feeds.get(region, feeds["world"])),
                                self.programmes.refinery_online, spec.refining.ramp_months))
        plants += [Plant(stage, index[n], capacity / 12.0) for stage, n, capacity in data.plants]
        plants += [
            Plant(p.stage, index[p.nation], p.capacity_t_per_year / 12.0, None, month_index(p.online, spec.start_year),
                  p.ramp_months)
            for p in data.plant_projects
        ]
        stage_products = {stage: self.chain.stage_index(stage) for stage in STAGES}
        converters = Converters(plants, len(self.products), stage_products)
        self.converters = converters
        for k in range(len(converters)):
            Converter(self, converters, k)

    def _yields_from(self, data: SupplyChain, nation: str) -> np.ndarray:
        """[P] model month from which a separation plant in ``nation`` yields each oxide
        (separation_scope.csv; inf where never, 0 for every other product)."""
        start = np.zeros(len(self.products))
        months = [np.inf if m is None else month_index(m, self.spec.start_year) for m in data.separation_from[nation]]
        start[self._oxides] = months
        return start

    def _start_plants(self, plants: Converters, base: BaseYear) -> None:
        """Base-year output of each existing plant, each product in proportion to the
        capacity within its stage that yields it at month 0 (an oxide: of the separation
        plants yielding it); expected sales at that rate; output and input stocks at
        target cover."""
        cover = self.market.target_cover_months
        existing = ~plants.planned
        for stage in STAGES:
            here = existing & (plants.stage == stage)
            share = np.where(here, plants.capacity, 0.0) / max(plants.capacity[here].sum(), 1e-12)
            products = self.chain.stage_index(stage)
            yielding = share[:, None] * plants.yielding[:, products]  # [K, p]
            rate = np.zeros((len(plants), len(self.products)))
            rate[:, products] = yielding / np.maximum(yielding.sum(axis=0), 1e-12) * base.stage_output[products] / 12.0
            plants.sales += rate
            if stage == SEPARATION:
                feed = share * base.stage_output[self._concentrates].sum() / 12.0
                plants.inputs += cover * feed[:, None] * plants.feed_share
            else:
                plants.inputs += cover * rate @ self.chain.data.recipe
        plants.outputs = cover * plants.sales

    def _build_end_users(self, calibration: Calibration, data: SupplyChain, base: BaseYear) -> None:
        """Magnet users (end use x region) and oxide users (sector x region) with base-year
        need; a contract book by origin for each product (``_contract_book``)."""
        rows = []  # region, sector, base need [P] t/month, growth, lifetime months, recyclable, inventory months
        for u, use in enumerate(data.end_uses):
            for r in range(len(self.regions)):
                if base.magnet_use[u, r].sum() > 0:
                    rows.append((r, use, base.magnet_use[u, r] / 12.0, data.end_use_growth[u],
                                 data.end_use_lifetime_years[u] * 12, data.end_use_recyclable[u],
                                 data.end_use_inventory_months[u]))
        oxide_sectors = [(s, name) for s, name in enumerate(calibration.sectors) if name != "magnets"]
        for k, (s, sector) in enumerate(oxide_sectors):
            for r in range(len(self.regions)):
                use = np.zeros(len(self.products))
                use[self._oxides] = base.oxide_use[k, r] / 12.0
                if use.sum() > 0:
                    rows.append((r, sector, use, calibration.demand_growth[s], calibration.product_lifetime_years[s] * 12,
                                 calibration.recyclable_fraction[s], self.market.inventory_months))
        region, sector, need, growth, lifetime, recyclable, inventory = zip(*rows, strict=True)
        users = EndUsers(
            np.array(region), tuple(sector), np.array(need), np.array(growth), np.rint(np.array(lifetime)).astype(int),
            np.array(recyclable), np.array(inventory), self.chain.content,
            Substitutes.from_content(self.chain.content, self._magnets),
        )
        self.end_users = users
        for b in range(len(users)):
            EndUser(self, users, b)
        self._contract_book(users)

    def _origin_shares(self) -> np.ndarray:
        """[P, R] where each product is made: the region's share of the capacity that
        makes it at month 0 (an oxide: of the separation plants yielding it;
        concentrates: mine capacity)."""
        share = np.zeros((len(self.products), len(self.regions)))
        plants = self.converters
        for p in range(len(self.products)):
            making = plants.makes[:, p] & plants.yielding[:, p]
            capacity = np.bincount(plants.region[making], plants.capacity[making], minlength=len(self.regions))
            share[p] = capacity / max(capacity.sum(), 1e-12)
        mines = np.zeros((len(self.deposits), len(self.regions)))
        for nation in self.nations:
            mines[:, nation.region_index] += nation.mine_capacity
        share[self._concentrates] = mines / np.maximum(mines.sum(axis=1, keepdims=True), 1e-12)
        return share

    def _contract_book(self, users: EndUsers) -> None:
        """Each end user's contract book ``contract_share`` [B, P, R]: the share of its
        trend need of each product contracted from each origin (where the product is
        made, capped by the diversification rule, plus partnership offtake on top), with
        the parts partnerships add and the cap moved (what their premiums are paid on);
        contracts are signed at staggered months and renewed every ``contracts.months``."""
        spec = self.spec
        origin = self._origin_shares()  # [P, R]
        partners = np.isin(np.array(self.regions), spec.partnership.partners)
        book = np.zeros((len(users), len(self.products), len(self.regions)))
        self.partner_share = np.zeros(len(users))
        self.diversified_share = np.zeros(len(users))
        for b in range(len(users)):
            region = self.regions[users.region[b]]
            shares = spec.contracts.share * origin
            if spec.contracts.max_origin_share < 1.0 and region in spec.contracts.regions:
                capped = spec.contracts.share * np.apply_along_axis(capped_shares, 1, origin, spec.contracts.max_origin_share)
                self.diversified_share[b] = 0.5 * float(np.abs(capped - shares).sum(axis=1).mean())
                shares = capped
            offtake = origin * partners[None, :]
            if spec.partnership.share > 0 and region in spec.partnership.regions and offtake.sum() > 0:
                self.partner_share[b] = spec.partnership.share
                total = offtake.sum(axis=1, keepdims=True)
                shares = shares + spec.partnership.share * np.where(total > 0, offtake / np.maximum(total, 1e-12), 0.0)
            book[b] = shares
        self.contract_book = book
        self.contract_months_left = self.rng.integers(0, spec.contracts.months, size=len(users))
        self.contract_volume = users.trend_need(0)[:, :, None] * book
        self.contract_price = self.base_price.T[users.region]

    def _build_recyclers(self) -> None:
        """A recycler in every region with recyclable end uses or magnet makers (their swarf)."""
        users, plants = self.end_users, self.converters
        programme = self.spec.recycling
        for r, region in enumerate(self.regions):
            sources = np.flatnonzero((users.region == r) & (users.recyclable > 0))
            makers = np.flatnonzero((plants.region == r) & (plants.stage == MAGNET))
            if len(sources) or len(makers):
                in_programme = region in programme.regions
                Recycler(
                    self, region, r, sources,
                    collection_rate=max(self.market.collection_rate, programme.rate if in_programme else 0.0),
                    subsidy_usd_per_kg=programme.subsidy_usd_per_kg if in_programme else 0.0,
                )
        self.recyclers = self.agents_by_type[Recycler]

    def _build_stockpiles(self) -> None:
        spec = self.spec
        users = self.end_users
        if spec.stockpile.months > 0:
            for region in spec.stockpile.regions:
                r = self.regions.index(region)
                need = users.base_need[users.region == r].sum(axis=0) @ self.chain.content  # [E]
                if need.sum() > 0:
                    reserve = spec.stockpile.initial_fill * spec.stockpile.months * need
                    StrategicStockpile(self, region, r, reserve, spec.stockpile, self.reference_price)
        self.stockpiles = self.agents_by_type.get(StrategicStockpile, [])

    def _build_domestic_policy(self) -> None:
        """The exporter's domestic supply policy (``abm.domestic_policy``), if enabled:
        its quotas and its state reserve, which starts empty."""
        policy = self.spec.domestic_policy
        self.supply_quotas: SupplyQuotas | None = None
        self._state_reserve: StateReserve | None = None
        self._policy_elements = np.isin(self.elements, policy.elements)
        self._policy_nation: ExportingNation | None = None
        if policy.enabled:
            nation = next(n for n in self.nations if n.code == policy.nation)
            self._policy_nation = nation
            self.supply_quotas = SupplyQuotas(policy, nation.basket, nation.mine_capacity, self.reference_price,
                                              self._policy_elements)
            self._state_reserve = StateReserve(self, nation.code, nation.region_index, np.zeros(len(self.elements)))
            self._quota_deposits = np.flatnonzero(nation.mine_capacity > 0)
            self._policy_separators = self.converters.separating & (self.converters.region == nation.region_index)
        # Every government stock the market trades with: importers' stockpiles, the state reserve.
        self.reserves = list(self.stockpiles) + ([self._state_reserve] if self._state_reserve is not None else [])

    def quota_labels(self) -> tuple[str, ...]:
        """Labels of ``production_quota``: the policy nation's mining quota of each deposit
        type it mines, then its separation quota (none without a domestic policy)."""
        if self.supply_quotas is None:
            return ()
        code = self._policy_nation.code
        return tuple(f"{code} mining {self.deposits[d]}" for d in self._quota_deposits) + (f"{code} separation",)

    def _init_state(self) -> None:
        n_elements, n_regions, n_products = len(self.elements), len(self.regions), len(self.products)
        users = self.end_users
        self._user_onehot = (users.region[:, None] == np.arange(n_regions)[None, :]).astype(float)  # [B, R]
        self._plant_onehot = (self.converters.region[:, None] == np.arange(n_regions)[None, :]).astype(float)  # [K, R]
        self.importing_regions = tuple(r for i, r in enumerate(self.regions) if (users.region == i).any())
        self._importing_index = [self.regions.index(r) for r in self.importing_regions]
        self.exporters = tuple(n.code for n in self.nations)
        has_market = set(self.importing_regions) | {self.regions[r] for r in self.converters.region}
        self.price_zones = tuple(c for c in self.exporters if c in has_market) + (WORLD,)
        importing = np.isin(np.array(self.regions), self.importing_regions)
        self.world_regions = importing & (np.array(self.regions) != self.spec.shock.exporter)
        pairs = self.spec.tension.parsed_pairs
        exporter = self.spec.shock.exporter
        self._user_pair = np.array([
            next((i for i, (a, x) in enumerate(pairs) if a == self.regions[r] and x == exporter), -1)
            for r in users.region
        ])
        # Working stock starts at its target at the mean tension (``EndUsers.plan``).
        hoarding = np.where(self._user_pair >= 0, self.market.hoarding_response * self.spec.tension.mean, 0.0)
        users.stock = users.stock * (1.0 + hoarding)[:, None]
        substitution = self.spec.substitution
        self._substituting = np.isin(np.array(self.regions)[users.region], substitution.regions) & np.isin(
            np.array(users.sector), self.chain.data.end_uses
        )
        self._substituted_elements = np.isin(self.elements, substitution.elements)

        self.product_price = self.base_price.copy()  # [P, R] this month's clearing prices
        self._normal_price = self.base_price.copy()  # [P, R] the price sellers have seen (``_expected_price``)
        self.trade_price = self.product_price[self._oxides]
        self._clearing: Clearing | None = None
        self.tension = np.full(len(pairs), self.spec.tension.mean)
        self._drawn_tension = self.tension
        self._rules = self._product_rules(0, self.tension)[1]
        self._reference: np.ndarray | None = None  # [P, R, R] this month's counterfactual flows, if measured
        self._licensed = np.full((n_products, n_regions, n_regions), np.inf)  # [P, R, R] t per licensed link
        self._licensing_since = np.full((n_products, n_regions), -1)  # month each origin's licensing of p began
        self._decided_through = np.full((n_products, n_regions), -1)  # last filing month decided
        self._outage = np.zeros((n_regions, len(self.deposits)))
        self._unofficial = np.zeros((n_products, len(self.exporters)))
        zeros_p = np.zeros((n_products, n_regions))
        self.production, self.product_shortfall, self.product_unserved = zeros_p.copy(), zeros_p.copy(), zeros_p.copy()
        self.product_received = zeros_p.copy()
        self.product_flow = np.zeros((n_products, n_regions, n_regions))
        self.product_origin = np.zeros((n_products, n_regions, n_regions))
        self.cumulative_trade = np.zeros((n_elements, n_regions, n_regions))  # [E, origin, to] t to end users
        self.quota = np.full((n_elements, len(self.exporters)), np.nan)
        self.supply_by_origin = np.zeros((n_elements, n_regions))
        self.mined = np.zeros((n_elements, len(self.exporters)))
        self.exports = np.zeros((n_elements, len(self.exporters)))
        self.unofficial_exports = np.zeros((n_elements, len(self.exporters)))
        self.state_reserve = np.zeros((n_elements, len(self.exporters)))
        self.reserve_purchases = np.zeros((n_elements, len(self.exporters)))
        self.production_quota = np.zeros(len(self.quota_labels()))
        n_parties = len(self.negotiating_party)
        self.deal_share, self.deal_price = np.zeros((n_elements, n_parties)), np.zeros((n_elements, n_parties))
        self.deal_in_force = np.zeros(n_parties)
        self.deal_value = np.zeros(len(DEAL_VALUES) * n_parties)
        self._party = np.isin(np.array(self.regions), self.spec.negotiation.importers)
        self._deal_elements = np.isin(np.array(self.elements), self.spec.negotiation.elements)
        self.trade = np.zeros((n_elements, n_regions, n_regions))  # [E, from, to] t this month
        self.restricted = np.zeros((n_elements, n_regions, n_regions), dtype=bool)
        self.policy_cost = np.zeros(len(self.programmes.names))
        self._record_investment()
        self.recycled = np.zeros(n_elements)
        self.consumed = np.zeros(n_elements)
        self.losses = np.zeros(n_elements)
        self._conversion_losses = np.zeros(n_elements)
        self.oxide_sold = np.zeros((n_elements, n_regions))

    def _spin_up(self) -> None:
        """Run the market at base-year conditions (month 0's needs, no noise, only the
        export taxes in force at month 0) so that month 0 starts from settled trade
        routes and prices, and every exporter's reference exports are its settled
        exports. Draws no random numbers."""
        for _ in range(SPIN_UP_MONTHS):
            self._month(spin_up=True)
        self._collect()

    # ------------------------------------------------------------------- step
    def step(self) -> None:
        """One month, in the order of docs/ODD.md §3 (process overview)."""
        self._month(spin_up=False)
        self.month += 1
        self.datacollector.collect(self)
        self.running = self.month < self.spec.horizon_months

    def _month(self, spin_up: bool) -> None:
        self._finish_month(self._draw_rules(spin_up), spin_up)

    def _finish_month(self, rules: tuple, spin_up: bool) -> None:
        self._set_export_rules(rules, spin_up)
        if self.supply_quotas is not None and not spin_up:
            self._apply_domestic_policy()
        self._produce()
        self._convert()
        self.recyclers.do("recycle", self.end_users.end_of_life_scrap(self.month), self.product_price[self._oxides],
                          self.reference_price, self.spec.recycling.collection_cost_ratio)
        self._stockpile_decisions(spin_up)
        self._plan_purchases(spin_up)
        self._clear_markets()
        if not spin_up:
            self._invest()
            self.programmes.account(self, self.month)
            self.policy_cost = self.programmes.cost
        self._collect()

    def finish_counterfactual_fork(self) -> None:
        """In a counterfactual run forked this month (``abm.counterfactual``): this month's
        rules without percentage cuts and licences, tension without their announcements,
        and the rest of the month."""
        rules = self._product_rules(self.month, self._drawn_tension, self.programmes.guaranteed_share())
        self.tension = np.clip(self._drawn_tension + rules[0].announced, 0.0, 1.0)
        self._finish_month(rules, spin_up=False)
        self.month += 1

    def advance_counterfactual(self) -> None:
        """One month of a counterfactual run."""
        self._month(spin_up=False)
        self.month += 1

    def _draw_rules(self, spin_up: bool) -> tuple:
        """Tension evolves (an agreement lowers it until breached, announcements of
        restrictions raise it); this month's export rules per element and per product.
        The spin-up keeps tension at its mean and applies only month 0's export taxes."""
        if spin_up:
            rules, product = self._product_rules(0, self.tension)
            product = dataclasses.replace(
                product, quota_cut=np.zeros_like(product.quota_cut), banned=np.zeros_like(product.banned),
                tonnage_quotas=(), licences=(), re_export_banned=np.zeros_like(product.re_export_banned),
            )
            return rules, product
        programmes = self.programmes
        tension = evolve_tension(self.tension, self.spec.tension, self.rng, mean=programmes.tension_means())
        self._drawn_tension = programmes.check_breach(tension, self.month)
        rules, product = self._product_rules(self.month, self._drawn_tension, programmes.guaranteed_share(),
                                             negotiate=self.counterfactual is not None)
        self.tension = np.clip(self._drawn_tension + rules.announced, 0.0, 1.0)
        return rules, product

    def _negotiate(self, rules, tension: np.ndarray):
        """The negotiating party and the exporter review their deal on this month's rules
        without one (``abm.negotiation.Talks``); the rules under the deal, and its records."""
        exporter = self.regions.index(self.spec.shock.exporter)
        talks = self.talks
        exposure = self._exposure(rules, exporter, tension)
        share = talks.review(self.month, exposure)
        need, restored = exposure.need, exposure.restored(share)  # need without the controls
        with np.errstate(divide="ignore", invalid="ignore"):
            guaranteed = np.where((need > 0) & (restored > 0), share * exposure.imports / need, 0.0)
            revenue = exposure.price @ restored
            markup = talks.terms.transfer / (talks.params.horizon_months * revenue) if share > 0 and revenue > 0 else 0.0
        # new arrays each month: DataCollector keeps the objects it is given
        self.deal_share = np.minimum(guaranteed, 1.0)[:, None]
        self.deal_price = np.where(restored > 0, exposure.price / USD_PER_T_PER_USD_PER_KG * (1.0 + markup), 0.0)[:, None]
        self.deal_in_force = np.array([float(share > 0)])
        values = talks.values
        self.deal_value = np.array([values.importer_deal, values.importer_no_deal, values.exporter_deal,
                                    values.exporter_no_deal, talks.terms.transfer if share > 0 else 0.0])
        return with_deal(rules, exporter, self._party, self._deal_elements, share)

    def _exposure(self, rules, exporter: int, tension: np.ndarray) -> Exposure:
        """The negotiating party's position on the deal's elements from last month's
        state, the counterfactual run's (what it would need and pay without the
        controls; its own state while none runs) and this month's rules without a deal
        (``abm.negotiation.Exposure``)."""
        party, content, deal = self._party, self.chain.content, self._deal_elements
        without = self.counterfactual.run or self
        reference = self.product_flow if self._reference is None else self._reference  # [P, R, R]
        by_member = reference[:, exporter][:, party].T @ content * deal  # [members, E] t
        imports = by_member.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = np.where(imports > 0, (party_fill(rules, exporter, party) * by_member).sum(axis=0) / imports, 1.0)
        columns = [self.importing_regions.index(r) for r in np.array(self.regions)[party] if r in self.importing_regions]
        drawn = sum((s.sold for s in self.stockpiles if party[s.region_index]), np.zeros(len(self.elements)))
        need = without.demand_by_region[:, party]  # [E, members]
        gap = need.sum(axis=1) - self.supply[:, columns].sum(axis=1) + drawn
        if self.talks.terms is not None:  # what only the deal let through
            shipped = self.product_flow[:, exporter][:, party].sum(axis=1) @ content
            gap = gap + np.maximum(shipped - fill * imports, 0.0)
        weight = need + 1e-12
        price = (without.trade_price[:, party] * weight).sum(axis=1) / weight.sum(axis=1)  # [E] USD/kg
        pairs = [i for i, (a, x) in enumerate(self.spec.tension.parsed_pairs)
                 if x == self.spec.shock.exporter and a in self.spec.negotiation.importers]
        to_usd_per_t = self.reference_price * USD_PER_T_PER_USD_PER_KG
        return Exposure(
            need=need.sum(axis=1) * deal, gap=np.maximum(gap, 0.0) * deal,
            stock=(self.strategic_stock[:, columns] + self.stockpile[:, columns]).sum(axis=1),
            imports=imports, fill=fill, price=price * USD_PER_T_PER_USD_PER_KG,
            ceiling=self.market.backstop_ratio * to_usd_per_t,
            unmet_cost=self.talks.params.unmet_cost_ratio * to_usd_per_t,
            elasticity=self.market.short_run_elasticity,
            tension=float(tension[pairs].mean()) if pairs else self.spec.tension.mean,
        )

    def _set_export_rules(self, rules: tuple, spin_up: bool) -> None:
        """Each nation sets its export caps and bans per product; scripted outages and
        partner disruptions take effect. Percentage cuts and licences are measured
        against the counterfactual exports (``abm.counterfactual``)."""
        rules, product = rules
        self._reference = None
        if not spin_up and self.counterfactual is not None:
            if product.quota_cut.any() or product.licences:
                self._reference = self.counterfactual.this_month(self)
            else:
                self.counterfactual.stop()
        licensed_exports, self._licensed = self._licensed_flows(product)
        if spin_up:
            self._outage = np.zeros_like(rules.outage)
            availability: dict[str, float] = {}
        else:
            availability = self.programmes.partner_availability()
            self._outage = rules.outage.copy()
        self._rules = product
        for nation in self.nations:
            i = nation.region_index
            tonnage = tuple((tonnes, covered) for row, tonnes, covered in product.tonnage_quotas if row == i)
            reference = None if self._reference is None else self._reference[:, i].sum(axis=1)
            nation.set_export_policy(product.quota_cut[i], product.banned[i], tonnage, product.export_tax[i],
                                     reference=reference, licensed=licensed_exports[:, i])
            kept = availability.get(nation.code, 1.0)
            self._outage[i] = 1.0 - (1.0 - self._outage[i]) * kept
        plants = self.converters
        plants.availability = np.array([availability.get(self.regions[r], 1.0) for r in plants.region])
        caps = np.stack([n.export_cap for n in self.nations], axis=1)  # [P, X]
        self._unofficial = np.zeros_like(caps)
        if self.market.smuggling_share > 0 and not spin_up:
            world = self.world_product_price()
            for k, nation in enumerate(self.nations):
                self._unofficial[:, k] = nation.unofficial_allowance(
                    world, self.product_price[:, nation.region_index], self.market.smuggling_share
                )
        content = self.chain.content
        limited = np.isfinite(caps)
        quota = np.where(limited, caps, 0.0).T @ content  # [X, E]
        covers = limited.T.astype(float) @ (content > 0)  # [X, E]
        self.quota = np.where(covers.T > 0, quota.T, np.nan)

    def _apply_domestic_policy(self) -> None:
        """The policy nation reviews its quotas on last month's domestic oxide prices;
        its separation plants run within the separation quota; enforcement stops part
        of the smugglers' allowance (``abm.domestic_policy``)."""
        quotas, nation = self.supply_quotas, self._policy_nation
        quotas.review(self.month, self.product_price[self._oxides, nation.region_index])
        plants = self.converters
        plants.availability = np.where(self._policy_separators, plants.availability * quotas.separation_cap(self.month),
                                       plants.availability)
        self._unofficial[:, self.exporters.index(nation.code)] *= 1.0 - quotas.enforcement(self.month)

    def _licensed_flows(self, product) -> tuple[np.ndarray, np.ndarray]:
        """What licences let each origin ship this month: [P, R] t to all destinations
        together (licences on every destination alike: an export cap the market shares
        out, as a quota's) and [P, R, R] t on each licensed link (where licences differ by
        destination: one scoped to one destination, or sparing general-licence ones); inf
        where no licence applies.

        Where several licences cover a product the strictest terms apply, as for every
        rule: the lowest approval share on each link and the longest delay. Buyers apply
        each month for the counterfactual flow; ``delay_months`` later ``approval_share``
        of it is granted. Every month's applications are decided once, oldest first, from
        the month licensing of the product began: exports first wait out the delay; a
        shorter delay clears the backlog at once, a longer one decides nothing until the
        oldest waiting month is due."""
        n_products, n_regions = self.product_price.shape
        share = np.full((n_products, n_regions, n_regions), np.nan)  # [P, origin, destination]
        delay = np.full((n_products, n_regions), -1)
        users = self.end_users
        self._denied_users = np.zeros((n_products, len(users)), dtype=bool)
        denying = np.zeros((n_products, n_regions), dtype=bool)  # [P, origin] a licence denies some end users
        for region, approval, months, covered, destinations, denied in product.licences:
            applies = covered[:, None] & destinations[None, :]
            share[:, region, :] = np.where(applies, np.fmin(share[:, region, :], approval), share[:, region, :])
            delay[covered, region] = np.maximum(delay[covered, region], months)
            if denied:
                self._denied_users[covered] |= (np.isin(users.sector, denied) & destinations[users.region])[None]
                denying[covered, region] = True
        licensed = delay >= 0
        starting = licensed & (self._licensing_since < 0)
        self._licensing_since = np.where(licensed, np.where(starting, self.month, self._licensing_since), -1)
        self._decided_through = np.where(starting, self.month - 1, self._decided_through)
        due = np.where(licensed, self.month - delay, -1)  # [P, R] the last filing month due
        granted = np.zeros_like(share)
        first = int(self._decided_through[licensed].min()) + 1 if licensed.any() else self.month + 1
        for filed_in in range(first, self.month + 1):
            filed = self._reference if filed_in == self.month else self.counterfactual.months_ago(self.month - filed_in)
            decide = licensed & (filed_in > self._decided_through) & (filed_in >= self._licensing_since) & (filed_in <= due)
            if filed is not None and decide.any():
                granted += np.where(decide[:, :, None], np.nan_to_num(share) * filed, 0.0)
        self._decided_through = np.where(licensed, np.maximum(self._decided_through, due), self._decided_through)
        others = ~np.eye(n_regions, dtype=bool)[None]
        top = np.max(np.nan_to_num(share, nan=-1.0), axis=2, keepdims=True)
        # every destination, one share, and no end use denied (a denial ships per link)
        alike = licensed & np.where(others, share == top, True).all(axis=2) & ~denying
        every = np.where(alike, granted.sum(axis=2), np.inf)
        each = np.where((licensed & ~alike)[:, :, None] & ~np.isnan(share), granted, np.inf)
        return every, each

    def _produce(self) -> None:
        """Mines run on the price producers get at home for their oxides, a price floor included."""
        floor = self._floor()
        quotas = self.supply_quotas
        for nation in self.nations:
            price = self.product_price[self._oxides, nation.region_index]
            if floor is not None and nation.region_index == floor.region:
                price = np.where(floor.covered, np.maximum(price, floor.usd_per_kg), price)
            cap = quotas.mine_cap(self.month) if quotas is not None and nation is self._policy_nation else None
            nation.produce(price, self.market.supply_elasticity, self._outage[nation.region_index], cap)

    def _convert(self) -> None:
        """Every plant converts the inputs it holds; magnet makers' swarf goes to their
        region's recycler, which recovers ``swarf_recovery`` of it as oxide."""
        chain, market = self.chain, self.market
        lost = self.converters.convert(chain.data.recipe, chain.data.separation, chain.content,
                                       market.target_cover_months, market.restock_months)  # [K, E]
        swarf = np.where((self.converters.stage == MAGNET)[:, None], lost, 0.0)
        recovered = market.swarf_recovery * (self._plant_onehot.T @ swarf)  # [R, E]
        for recycler in self.recyclers:
            recycler.take_swarf(recovered[recycler.region_index])
        self._conversion_losses = lost.sum(axis=0) - recovered.sum(axis=0)

    def _stockpile_decisions(self, spin_up: bool) -> None:
        """Each strategic stockpile releases on shortage or a price spike, or refills; the
        state reserve buys below its policy band and releases above it, from the policy's start."""
        reserve, policy = self._state_reserve, self.spec.domestic_policy
        if reserve is not None and not spin_up and self.month >= policy.start:
            nation = self._policy_nation
            reserve.decide(*reserve_trade(policy, self.product_price[self._oxides, nation.region_index],
                                          self.reference_price, self._policy_elements,
                                          nation.mine_capacity @ nation.basket,
                                          float(reserve.reserve.sum() + reserve.oxide.sum())))
        if not self.stockpiles:
            return
        users = self.end_users
        shortfall = self._element_need_by_region(users.shortfall)
        trend = self._element_need_by_region(users.trend_need(self.month))
        for stock in self.stockpiles:
            r = stock.region_index
            stock.decide(self.spec.stockpile.months * trend[:, r], self.product_price[self._oxides, r], shortfall[:, r])

    def _plan_purchases(self, spin_up: bool) -> None:
        """End users plan at this month's posted prices (their region's last clearing
        prices); contracts due for renewal are re-signed at those prices."""
        users, market = self.end_users, self.market
        if self._substituting.any() and not spin_up:
            users.intensity[self._substituting] = self.programmes.intensity_after_substitution(
                users.intensity[self._substituting], self._substituted_elements, self.month
            )
        price = self.product_price.T[users.region]  # [B, P]
        tension = np.where(self._user_pair >= 0, self.tension[np.maximum(self._user_pair, 0)], 0.0)
        if spin_up:
            noise = np.ones((len(users), len(self.products)))
        else:
            noise = np.exp(market.demand_volatility * self.rng.standard_normal((len(users), len(self.products))))
        users.plan(self.month, price, self.product_reference, tension, noise, market)
        renew = self.contract_months_left <= 0
        if renew.any():
            trend = users.trend_need(self.month)
            self.contract_volume[renew] = trend[renew, :, None] * self.contract_book[renew]
            self.contract_price[renew] = price[renew]
            self.contract_months_left[renew] = self.spec.contracts.months
        if not spin_up:
            self.contract_months_left -= 1

    # ---------------------------------------------------------------- market
    def _offers(self) -> tuple[np.ndarray, np.ndarray]:
        """[P, R] t every region's sellers hold for sale, and [P, R] t they want to keep
        at the expected price: plants' outputs (``target_cover_months`` of expected
        sales kept), mines' concentrate, recyclers' oxide and stockpile releases (sold whole)."""
        plants = self.converters
        stock = plants.outputs.T @ self._plant_onehot
        keep = self.market.target_cover_months * plants.sales.T @ self._plant_onehot
        for nation in self.nations:
            stock[self._concentrates, nation.region_index] += nation.concentrate
        for seller in self._oxide_sellers():
            stock[self._oxides, seller.region_index] += seller.oxide
        stock = np.maximum(stock, 0.0)  # rounding dust below zero is nothing to sell
        return stock, np.minimum(keep, stock)

    def _oxide_sellers(self) -> list:
        return list(self.recyclers) + self.reserves

    def _cost_floor(self) -> np.ndarray:
        """[P, R] USD/kg below which sellers sell nothing: a product's own stage cost
        (``abm.chain.cost_floors``; a plant's inputs in stock are paid for, so a metal or
        magnet sells down to its conversion cost)."""
        return np.broadcast_to(self.chain.conversion_floor[:, None], self.product_price.shape)

    def _clear_markets(self) -> None:
        """Contracts first, then every product's spot market at once (``abm.clearing``);
        sellers give up stock in proportion to what they held, buyers get theirs in
        proportion to what they bid."""
        plants, users, market = self.converters, self.end_users, self.market
        n_regions = len(self.regions)
        stock, keep = self._offers()
        export_cap = np.full_like(stock, np.inf)
        for k, nation in enumerate(self.nations):
            export_cap[:, nation.region_index] = nation.export_cap + self._unofficial[:, k]
        open_link = ~np.zeros((len(self.products), n_regions, n_regions), dtype=bool)
        for nation in self.nations:
            open_link[:, nation.region_index, :] = ~nation.banned
        licensed = np.isfinite(self._licensed) & open_link  # these links carry licensed shipments only
        open_link &= ~np.isfinite(self._licensed)
        # Contracts: t due from each origin to each region, delivered before the spot market.
        due = np.einsum("bpo,br->por", self.contract_volume, self._user_onehot)
        contract = deliver_contracts(due, stock, export_cap, open_link)
        with np.errstate(divide="ignore", invalid="ignore"):
            filled = np.where(due > 0, contract / np.where(due > 0, due, 1.0), 0.0)
        user_contract = np.einsum("bpo,pob->bp", self.contract_volume, filled[:, :, users.region])
        contract_abroad = contract * (1.0 - np.eye(n_regions))[None]
        stock_left = np.maximum(stock - contract.sum(axis=2), 0.0)  # rounding dust below zero is nothing
        cap_left = np.maximum(export_cap - contract_abroad.sum(axis=2), 0.0)

        user_bid = np.maximum(users.want - user_contract, 0.0)  # [B, P]
        plant_bid = plants.input_bids(self.chain.data.recipe, market.target_cover_months, market.restock_months)
        bids = user_bid.T @ self._user_onehot + plant_bid.T @ self._plant_onehot
        for stock_agent in self.reserves:
            bids[self._oxides, stock_agent.region_index] += stock_agent.want
        # Licensed shipments go to the bidders whose end use the licence does not deny.
        allowed = bids - (user_bid * self._denied_users.T).T @ self._user_onehot
        with np.errstate(divide="ignore", invalid="ignore"):
            allowed_share = np.where(bids > 0, allowed / np.where(bids > 0, bids, 1.0), 1.0)
        shipped = deliver_licensed(np.where(licensed, self._licensed, 0.0) * allowed_share[:, None, :], stock_left,
                                   cap_left, allowed)
        stock_left = np.maximum(stock_left - shipped.sum(axis=2), 0.0)
        cap_left = np.maximum(cap_left - shipped.sum(axis=2), 0.0)
        shipped_in = shipped.sum(axis=1)  # [P, R]
        # An origin that closes links and restricts re-exports: no third country re-exports to them.
        closing = (~open_link).any(axis=2)  # [P, R]
        links = Links(trade_cost=self.chain.data.trade_cost, export_tax=self._rules.export_tax.T,
                      banned=~open_link, export_cap=cap_left,
                      no_re_export=(self._rules.re_export_banned.T & closing).any(axis=1))
        cleared = clear(
            Offers(stock=stock_left, keep=np.clip(keep, 0.0, stock_left), expected=self._expected_price(),
                   cost=self._cost_floor(), holdback=market.holdback),
            Bids(quantity=bids, planning=self.product_price, elasticity=market.short_run_elasticity,
                 choke=self._choke(plant_bid), shift=shipped_in),
            links, previous=self._clearing,
        )
        self._clearing = cleared
        # Where nothing was sold or bought the posted price is no trade's; it never falls
        # below the sellers' cost floor (a zone whose buyers' choke collapsed posts cost).
        idle = (cleared.sold <= 0) & (cleared.bought <= 0)
        self.product_price = np.where(idle, np.maximum(cleared.price, self._cost_floor()), cleared.price)
        self._normal_price += (cleared.price - self._normal_price) / market.price_memory_months
        self.trade_price = cleared.price[self._oxides]  # [E, R] oxide prices trade was done at
        self._settle(stock, cleared, contract + shipped, shipped_in, user_contract, user_bid, plant_bid, bids, allowed)

    def _choke(self, plant_bid: np.ndarray) -> np.ndarray:
        """[P, R] factor over this month's price above which a zone's buyers do not buy.
        A product's ceiling is ``choke_ratio`` times this month's price (how far a price
        can move in a month) and, where end users buy it, at most ``backstop_ratio``
        times its reference price (the price at which they turn to rare-earth-free
        designs or go without). What plants buy is further capped by what their output
        fetches (``Chain.willingness_to_pay``, derived demand): separators pay for a
        concentrate at most what its oxides fetch now less the separation cost; metal
        and magnet makers pay for an input at most what their output would fetch at its
        ceiling, less their other costs (a magnet maker pays up to the whole margin of a
        Dy-bearing magnet for its Dy, and no more)."""
        market, price = self.market, self.product_price
        ceiling = market.choke_ratio * price
        backstop = market.backstop_ratio * self.product_reference[:, None]
        ceiling = np.where(self._bought_by_end_users[:, None], np.minimum(ceiling, backstop), ceiling)
        bought_by_plants = (plant_bid.T @ self._plant_onehot) > 0
        # (a concentrate's value is its oxides' at this month's prices: the ceiling is on metals and magnets)
        value = self.chain.willingness_to_pay(price, output_price=ceiling,
                                              yielding=self.converters.yielding_share(self._plant_onehot))
        ceiling = np.where(bought_by_plants, np.minimum(ceiling, value), ceiling)
        return np.maximum(ceiling / price, MIN_CHOKE)

    def _expected_price(self) -> np.ndarray:
        """[P, R] USD/kg the price sellers expect, around which they hold back stock
        (``abm.clearing.Offers``): metal and magnet makers price at cost, their inputs at
        this month's prices in their region plus their conversion cost (competitive
        converters with capacity to spare); mines and separators at the price they have
        seen over the last ``price_memory_months`` (``_normal_price``): a price above it
        draws stock out, one below it holds stock back, so a glut or a shortage moves the
        price in proportion to how far stocks are from target, and the normal price
        follows only slowly."""
        made = self._made_products
        expected = self._normal_price.copy()
        expected[made] = self.chain.input_cost(self.product_price)[made] + self.chain.data.conversion_cost[made, None]
        return expected

    def _settle(self, stock, cleared, contract, shipped_in, user_contract, user_bid, plant_bid, bids, allowed) -> None:
        """Hand every seller its sales and every buyer its purchases; record trade.
        ``contract`` [P, R, R] t delivered ahead of the spot market (contracts and licensed
        shipments), ``shipped_in`` [P, R] t of licensed shipments, shared by the
        region's bidders a licence does not deny (who bid ``allowed`` [P, R] t); every
        bidder shares the spot market's purchases in proportion to what it still bid."""
        plants, users = self.converters, self.end_users
        sold = contract.sum(axis=2) + cleared.sold  # [P, R]
        with np.errstate(divide="ignore", invalid="ignore"):
            sold_share = np.where(stock > 0, np.minimum(sold / np.where(stock > 0, stock, 1.0), 1.0), 0.0)
            licensed = np.where(allowed > 0, shipped_in / np.where(allowed > 0, allowed, 1.0), 0.0)  # [P, R]
            spot = bids - shipped_in
            # where licensed shipments met (all but rounding of) the whole bid the spot market
            # may still buy (its demand curve at a lower price): those tonnes go to the bidders pro rata
            met = spot <= 1e-9 * bids
            spot_fill = np.where(~met, cleared.bought / np.where(~met, spot, 1.0), 0.0)
            extra = np.where(met & (bids > 0), cleared.bought / np.where(bids > 0, bids, 1.0), 0.0)
        fill = licensed + (1.0 - licensed) * spot_fill + extra  # [P, R] share of an allowed bid received
        plants.sell(sold_share)
        for nation in self.nations:
            nation.concentrate = nation.concentrate * (1.0 - sold_share[self._concentrates, nation.region_index])
        for seller in self._oxide_sellers():
            seller.sell(sold_share[self._oxides, seller.region_index])
        plants.receive(plant_bid * fill.T[plants.region])
        for stock_agent in self.reserves:
            stock_agent.receive(stock_agent.want * fill[self._oxides, stock_agent.region_index])
        received = user_contract + user_bid * np.where(self._denied_users.T, (spot_fill + extra).T[users.region],
                                                       fill.T[users.region])
        user_zone_bid = user_bid.T @ self._user_onehot  # [P, R]
        with np.errstate(divide="ignore", invalid="ignore"):
            user_part = np.where(bids > 0, user_zone_bid / np.where(bids > 0, bids, 1.0), 0.0)
        self.product_unserved = cleared.unserved * user_part
        price = self.product_price.T[users.region]
        users.consume(received, user_contract, self.contract_price, price, self.month)

        flow = contract * (1.0 - np.eye(len(self.regions)))[None] + cleared.flow  # [P, R, R]
        self.product_flow = flow
        self.product_origin = provenance(sold, flow)
        # what the region's buyers (plants, end users, stockpiles) got: its sales at home and its imports
        self.product_received = np.maximum(sold - flow.sum(axis=2) + flow.sum(axis=1), 0.0)
        exports = flow.sum(axis=2)  # [P, R]
        for nation in self.nations:
            nation.record_exports(exports[:, nation.region_index])
        if self.counterfactual is not None:
            self.counterfactual.record(flow if self._reference is None else self._reference)
        content = self.chain.content
        exported = np.stack([exports[:, n.region_index] for n in self.nations], axis=1)  # [P, X]
        # Smugglers ship first (they undercut licensed exporters); customs see the rest.
        unofficial = np.minimum(self._unofficial, exported)
        self.exports = content.T @ (exported - unofficial)
        self.unofficial_exports = content.T @ unofficial
        self.trade = np.einsum("pab,pe->eab", flow, content)
        to_users = received.T @ self._user_onehot  # [P, R] delivered to end users
        by_origin = to_users[:, :, None] * self.product_origin  # [P, to, origin]
        self.cumulative_trade += np.einsum("pro,pe->eor", by_origin, content)
        self.supply_by_origin = content.T @ sold
        self.oxide_sold = sold[self._oxides]  # [E, R] t of oxide each region's sellers sold
        self._restrict(exports)

    def _restrict(self, exports: np.ndarray) -> None:
        """``restricted`` [E, R, R]: a rule closes the link a -> b for some product
        carrying the element, or a's export cap of it is used up."""
        closed = np.zeros((len(self.products), len(self.regions), len(self.regions)), dtype=bool)
        for nation in self.nations:
            cap = nation.export_cap
            binding = np.isfinite(cap) & (exports[:, nation.region_index] >= cap - 1e-9)
            closed[:, nation.region_index, :] = nation.banned | binding[:, None]
        self.restricted = np.einsum("pab,pe->eab", closed.astype(float), (self.chain.content > 0).astype(float)) > 0

    def _invest(self) -> None:
        """Existing capacity grows at the trend rate; planned plants follow their ramp;
        private investors commit, build and abandon new capacity (``abm.investment``)
        and what they built runs from next month."""
        factor = (1.0 + self.market.capacity_growth_per_year) ** (1.0 / 12.0)
        self.nations.do("grow", factor)
        invested = None
        if self.spec.investment.enabled:
            investors, plants = self.investors, self.converters
            floor = self._floor()
            margins = investors.margins(self.product_price, plants, self._plant_onehot, floor)
            investors.step(self.month, margins, *investors.unit_capacity(plants, self.nations),
                           self.month if floor is None else floor.end)
            for nation, mines in zip(self.nations, investors.mine_capacity(), strict=True):
                nation.invested_capacity = mines
            invested = investors.plant_capacity()
            self._record_investment()
        self.converters.grow(factor, self.month + 1, invested)

    def _floor(self) -> Floor | None:
        """This month's price floor, if one is in force."""
        floor = self.spec.price_floor
        if not self.programmes.floor_in_force(self.month):
            return None
        return Floor(self.regions.index(floor.region), np.isin(self.elements, floor.elements), floor.usd_per_kg,
                     floor.start + floor.months)

    def _record_investment(self) -> None:
        """t/yr of new capacity by region and stage (``Investors.labels``): committed and
        abandoned this month, under construction, running."""
        investors = self.investors
        self.capacity_committed, self.capacity_building = investors.committed, investors.building
        self.capacity_online, self.capacity_abandoned = investors.running, investors.abandoned_now

    # --------------------------------------------------------------- records
    def _element_need_by_region(self, per_user: np.ndarray) -> np.ndarray:
        """[E, R] element content of a per-end-user [B, P] array, summed by region."""
        return (per_user @ self.chain.content).T @ self._user_onehot

    def world_product_price(self) -> np.ndarray:
        """[P] the world market's price of each product: need-weighted over the importing
        regions outside the dominant exporter."""
        return self._world_mean(self.product_price, self.end_users.need.T @ self._user_onehot)

    def world_price(self, oxide_price: np.ndarray) -> np.ndarray:
        """[E] the world market's oxide price: weighted by each region's need of the element
        (in every product), over importing regions outside the exporter."""
        return self._world_mean(oxide_price, self.demand_by_region)

    def _world_mean(self, price: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """[K] mean of ``price`` [K, R] over the world regions, weighted by ``weight`` [K, R]."""
        weight = weight[:, self.world_regions] + 1e-12
        return (price[:, self.world_regions] * weight).sum(axis=1) / weight.sum(axis=1)

    def _zone_prices(self) -> np.ndarray:
        """[E, Z] oxide prices posted in each exporter's domestic zone, then the world market's."""
        oxide = self.product_price[self._oxides]
        columns = [oxide[:, self.regions.index(code)] for code in self.price_zones[:-1]]
        return np.stack([*columns, self.world_price(oxide)], axis=1)

    def _collect(self) -> None:
        """The element records: end users' need, receipts, shortfall and stocks by region
        (t of each element's oxide in what they buy), flows and stocks."""
        users = self.end_users
        self.demand_by_region = self._element_need_by_region(users.need)
        self.demand = self.demand_by_region[:, self._importing_index]
        self.demand_at_reference = self._element_need_by_region(users.reference_need)[:, self._importing_index]
        self.supply = self._element_need_by_region(users.received)[:, self._importing_index]
        self.shortfall = self._element_need_by_region(users.shortfall)[:, self._importing_index]
        self.stockpile = self._element_need_by_region(users.stock)[:, self._importing_index]
        spend = (users.spend @ self._value_share).T @ self._user_onehot  # USD split over elements by value
        self.spend = spend[:, self._importing_index]
        strategic = np.zeros((len(self.elements), len(self.regions)))
        for stock in self.stockpiles:
            strategic[:, stock.region_index] += stock.reserve + stock.oxide
        self.strategic_stock = strategic[:, self._importing_index]
        self.price = self._zone_prices()
        self.product_shortfall = users.shortfall.T @ self._user_onehot
        self.production = self.converters.produced.T @ self._plant_onehot
        for nation in self.nations:
            self.production[self._concentrates, nation.region_index] += nation.output
        content = self.chain.content
        self.mined = np.stack([n.mined for n in self.nations], axis=1)
        self.recycled = sum((r.recycled for r in self.recyclers), np.zeros(len(self.elements)))
        self.consumed = users.consumed.sum(axis=0) @ content
        self.losses = self._conversion_losses
        self.stocks = self._total_stocks()
        self._collect_domestic_policy()

    def _collect_domestic_policy(self) -> None:
        """The policy nation's quotas (t REO/month: mining by deposit type, separation),
        its state reserve's stock and this month's purchases [E, X] t."""
        reserve = self._state_reserve
        if reserve is None:
            return
        nation = self._policy_nation
        k = self.exporters.index(nation.code)
        # new arrays each month: DataCollector keeps the objects it is given
        self.state_reserve, self.reserve_purchases = np.zeros_like(self.state_reserve), np.zeros_like(self.state_reserve)
        self.state_reserve[:, k] = reserve.reserve + reserve.oxide
        self.reserve_purchases[:, k] = reserve.bought
        quotas, plants = self.supply_quotas, self.converters
        separation = plants.capacity[self._policy_separators].sum()
        mines = nation.mine_capacity + nation.project_capacity + nation.invested_capacity  # what the quota caps
        self.production_quota = np.append(quotas.mining[self._quota_deposits] * mines[self._quota_deposits],
                                          quotas.separation * separation)

    @functools.cached_property
    def _value_share(self) -> np.ndarray:
        """[P, E] share of each product's oxide value (at reference prices) in each element."""
        value = self.chain.content * self.reference_price[None, :]
        total = value.sum(axis=1, keepdims=True)
        return np.where(total > 0, value / np.where(total > 0, total, 1.0), 0.0)

    def _total_stocks(self) -> np.ndarray:
        """[E] t held anywhere: mines' concentrate, plants' inputs and outputs, recyclers'
        and stockpiles' oxide, end users' working stock, strategic reserves."""
        content, plants = self.chain.content, self.converters
        held = (plants.inputs.sum(axis=0) + plants.outputs.sum(axis=0) + self.end_users.stock.sum(axis=0)) @ content
        for nation in self.nations:
            held = held + nation.concentrate @ nation.basket
        for seller in self._oxide_sellers():
            held = held + seller.oxide
        for stock in self.reserves:
            held = held + stock.reserve
        return held

    def labels(self) -> dict[str, tuple[str, ...]]:
        """Labels of the region axis of each recorded element array (the element axis,
        where there is one, follows ``elements``)."""
        return {
            "price": self.price_zones,
            "demand": self.importing_regions,
            "demand_at_reference": self.importing_regions,
            "supply": self.importing_regions,
            "shortfall": self.importing_regions,
            "stockpile": self.importing_regions,
            "strategic_stock": self.importing_regions,
            "tension": self.tension_pairs,
            "quota": self.exporters,
            "supply_by_origin": self.regions,
            "mined": self.exporters,
            "exports": self.exporters,
            "unofficial_exports": self.exporters,
            "spend": self.importing_regions,
            "policy_cost": self.programmes.names,
            "recycled": (ALL,),
            "consumed": (ALL,),
            "losses": (ALL,),
            "stocks": (ALL,),
            **dict.fromkeys(("capacity_committed", "capacity_building", "capacity_online", "capacity_abandoned"),
                            self.investors.labels),
            "production_quota": self.quota_labels(),
            "state_reserve": self.exporters,
            "reserve_purchases": self.exporters,
            "deal_share": self.negotiating_party,
            "deal_price": self.negotiating_party,
            "deal_in_force": self.negotiating_party,
            "deal_value": tuple(f"{party}:{value}" for party in self.negotiating_party for value in DEAL_VALUES),
        }
