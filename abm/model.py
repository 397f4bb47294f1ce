"""RareEarthModel: the global rare earth supply chain under trade policy, month by month.

Builds exporting nations, refiners, importers, recyclers and strategic stockpiles from
the 2024 calibration (``abm/data``) and a scenario, and steps them in the order of
docs/ODD.md §3: policy, production, concentrate trade, separation, recycling,
stockpile decisions, purchase plans, market clearing, investment, accounts, data
collection.
"""

from pathlib import Path

import mesa
import numpy as np
from mesa.experimental.scenarios import Scenario as MesaScenario

from abm.agents import ExportingNation, Importer, Recycler, Refiner, StrategicStockpile
from abm.data import Calibration, load_calibration, month_index
from abm.levers import capped_shares
from abm.market import clear_markets, price_areas, prorata_fill, update_prices
from abm.policy import evolve_tension, export_rules
from abm.programmes import Programmes
from abm.scenario import KEYWORD_PATHS, Scenario, load_scenario, setting_value

# The world market in the tidy output: importers outside the dominant exporter.
WORLD = "world"
# Region label of a world total (recycled, consumed, losses, stocks).
ALL = "all"

# What DataCollector records each step: model attributes, each an array with fixed labels.
RECORDED = (
    "price", "demand", "supply", "shortfall", "stockpile", "strategic_stock", "tension", "quota",
    "supply_by_origin", "mined", "exports", "unofficial_exports", "spend", "policy_cost",
    "recycled", "consumed", "losses", "stocks",
)
# Recorded arrays without an element axis.
WITHOUT_ELEMENT = ("tension", "policy_cost")


def _nation_exports(nation: ExportingNation) -> np.ndarray:
    """[E] t a nation exported this month through customs (the model's ``exports`` column)."""
    return nation.model.exports[:, nation.model.exporters.index(nation.code)]


# Per-agent records, kept only with ``record_agents=True`` (Mesa agent-type reporters).
# Flows are t REO per month, stocks t REO, spend USD per month; each is an [E] array
# (elements in ``model.elements``) except a refiner's separation capacity (t REO per
# month, all elements). Names never clash with RECORDED: mesa.batch_run puts a model's and
# an agent's values in one row.
AGENT_LABELS = ("agent_type", "region", "sector")
AGENT_REPORTERS: dict[type, dict[str, object]] = {
    ExportingNation: {
        "mined_t": "mined", "exports_t": _nation_exports, "concentrate_stock_t": "concentrate",
    },
    Refiner: {
        "separation_capacity_t": "capacity", "feed_stock_t": "feed", "oxide_stock_t": "oxide", "sold_t": "sold",
    },
    Importer: {
        "need_t": "need", "received_t": "received", "shortfall_t": "shortfall", "stock_t": "stock",
        "spend_usd": "spend",
    },
    Recycler: {"recycled_t": "recycled", "scrap_pool_t": "scrap_pool", "sold_t": "sold"},
    StrategicStockpile: {"reserve_t": "reserve", "bought_t": "bought", "sold_t": "sold"},
}


def _agent_reporters() -> dict[type, dict[str, object]]:
    """AGENT_REPORTERS with each agent's labels first (its type, region, sector)."""
    labels = {
        "agent_type": lambda agent: type(agent).__name__,
        "region": lambda agent: agent.model.regions[agent.region_index],
    }
    return {
        kind: {**labels, **({"sector": "sector"} if kind is Importer else {}), **reporters}
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
    """Monthly agent-based model of rare earth mining, separation, trade and use.

    Every keyword is plain, so ``mesa.batch_run`` and SolaraViz can build it: ``rng``
    (seed), ``scenario`` (path or Scenario), overrides of the scenario's shock
    (``horizon_months``, ``quota_cut``, ``shock_start``, ``shock_months``,
    ``tension_volatility``) and the levers (``domestic_mining`` t/yr,
    ``permit_delay_months``, ``refining_capacity`` t/yr, ``refining_jv``,
    ``partnership_share``, ``substitution_rd`` USD/yr, ``recycling_rate``,
    ``recycling_subsidy`` USD/kg, ``stockpile_months``, ``contract_share``,
    ``max_origin_share``, ``agreement``, ``price_floor`` USD/kg). An override is
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
        record_agents: bool = False,
    ) -> None:
        spec = resolve_scenario(scenario).with_overrides(
            horizon_months=horizon_months, quota_cut=quota_cut, shock_start=shock_start,
            shock_months=shock_months, tension_volatility=tension_volatility,
            domestic_mining=domestic_mining, permit_delay_months=permit_delay_months,
            refining_capacity=refining_capacity, refining_jv=refining_jv, partnership_share=partnership_share,
            substitution_rd=substitution_rd, recycling_rate=recycling_rate, recycling_subsidy=recycling_subsidy,
            stockpile_months=stockpile_months, contract_share=contract_share, max_origin_share=max_origin_share,
            agreement=agreement, price_floor=price_floor,
        )
        keywords = {name: setting_value(spec, name) for name in KEYWORD_PATHS}
        mesa_scenario = MesaScenario(rng=rng, scenario=scenario, record_agents=record_agents, **keywords)
        super().__init__(rng=rng, scenario=mesa_scenario)
        self.spec = spec
        self.record_agents = record_agents
        calibration = load_calibration(self.spec.base_year)
        self.elements = calibration.elements
        self.regions = calibration.regions
        self.reference_price = calibration.reference_price
        self.deposits = calibration.deposits
        self.tension_pairs = self.spec.tension.pairs
        self.month = 0
        self.market = self.spec.market
        # Levers draw from their own stream, seeded by one draw that every run makes, so
        # switching a lever never shifts the random numbers of the rest of the model.
        self.programmes = Programmes(self.spec, np.random.default_rng(self.rng.integers(2**63)))
        self.base_price = self._base_price()
        self._build_agents(calibration)
        self._init_state()
        self.datacollector = mesa.DataCollector(
            model_reporters={name: name for name in RECORDED},
            agenttype_reporters=_agent_reporters() if record_agents else None,
        )
        self.datacollector.collect(self)

    # ----------------------------------------------------------------- set-up
    def _base_price(self) -> np.ndarray:
        """[E, R] month-0 prices: the reference (export) price everywhere, except inside
        an exporter that taxes its exports from month 0, where sellers net the tax: the
        pre-2010 gap between China's domestic and FOB prices is there from the start, not
        added on top of FOB prices that already carry it."""
        spec = self.spec
        rules = export_rules(
            spec, 0, np.full(len(spec.tension.pairs), spec.tension.mean), self.regions, self.elements, self.deposits,
        )
        return self.reference_price[:, None] / (1.0 + rules.export_tax.T)

    def _build_agents(self, calibration: Calibration) -> None:  # noqa: C901 - replaced by the stage graph of supply chain v2
        n_elements, n_regions = len(self.elements), len(self.regions)
        index = {r: i for i, r in enumerate(self.regions)}
        spec, market = self.spec, self.market

        mines: dict[str, np.ndarray] = {}
        for nation, deposit, capacity in calibration.mines:
            mines.setdefault(nation, np.zeros(len(self.deposits)))
            mines[nation][self.deposits.index(deposit)] += capacity
        world_supply = sum(c @ calibration.basket for c in mines.values()) * market.separation_yield  # [E] t / yr
        # The base year is taken as balanced: demand[r, s, e] t / month.
        demand = np.einsum("e,es,sr->rse", world_supply, calibration.sector_share, calibration.region_share) / 12.0

        separation = np.zeros(n_regions)
        for nation, capacity, _ in calibration.refiners:
            separation[index[nation]] += capacity
        # Sellers start at their target cover, and contracts are spread over origins,
        # both in proportion to separation capacity.
        separation_share = separation / separation.sum()
        world_need = demand.sum(axis=(0, 1))  # [E]
        for nation, capacity, feed in calibration.refiners:
            Refiner(
                self, nation, index[nation], capacity / 12.0, index[feed],
                oxide=market.target_cover_months * world_need * separation_share[index[nation]],
            )
        if spec.refining.tonnes_per_year > 0:
            plant = Refiner(self, spec.refining.region, index[spec.refining.region], 0.0,
                            index[spec.refining.region], oxide=np.zeros(n_elements))
            plant.plan(spec.refining.tonnes_per_year / 12.0, self.programmes.refinery_online, spec.refining.ramp_months)
        # Capacity history brought online after the base year (a base year's projects.csv).
        for project in calibration.projects:
            if project.kind == "refinery":
                plant = Refiner(self, project.nation, index[project.nation], 0.0, index[project.target],
                                oxide=np.zeros(n_elements))
                plant.plan(project.capacity_t_per_year / 12.0, month_index(project.online, self.spec.start_year), project.ramp_months)

        # Every region that mines or separates can restrict its exports. Its reference
        # exports start at its base-year oxide surplus: output in proportion to separation
        # capacity (as the refiners' stocks above) less its own demand.
        domestic_need = demand.sum(axis=1)  # [R, E]
        surplus = separation_share[:, None] * world_supply[None, :] / 12.0 - domestic_need
        producers = set(calibration.producers)
        if spec.domestic_mining.tonnes_per_year > 0:
            producers.add(spec.domestic_mining.region)
        for nation in sorted(producers, key=index.get):
            i = index[nation]
            built = ExportingNation(
                self, nation, i, mines.get(nation, np.zeros(len(self.deposits))) / 12.0,
                calibration.basket, self.base_price[:, i], reference_exports=np.maximum(surplus[i], 0.0),
            )
            for project in calibration.projects:
                if project.kind == "mine" and project.nation == nation:
                    built.plan(self.deposits.index(project.target), project.capacity_t_per_year / 12.0,
                               month_index(project.online, self.spec.start_year), project.ramp_months)
            new_mines = spec.domestic_mining
            if new_mines.tonnes_per_year > 0 and nation == new_mines.region:
                built.plan(self.deposits.index(new_mines.deposit), new_mines.tonnes_per_year / 12.0,
                           self.programmes.mine_online, new_mines.ramp_months)

        lifetimes = np.rint(calibration.product_lifetime_years * 12).astype(int)
        contract_start = self.rng.integers(0, spec.contracts.months, size=demand.shape[:2])
        for r, region in enumerate(self.regions):
            for s, sector in enumerate(calibration.sectors):
                if demand[r, s].sum() <= 0:
                    continue
                origin, partner_share, diversified_share = self._contract_origins(region, separation_share)
                importer = Importer(
                    self, region, r, sector, demand[r, s], calibration.demand_growth[s],
                    lifetimes[s], calibration.recyclable_fraction[s], origin,
                    self.base_price[:, r], market, spec.contracts, int(contract_start[r, s]),
                )
                importer.partner_share, importer.diversified_share = partner_share, diversified_share

        importers = list(self.agents_by_type[Importer])
        programme = spec.recycling
        for r, region in enumerate(self.regions):
            sources = [imp for imp in importers if imp.region_index == r and imp.recyclable_fraction > 0]
            if sources:
                in_programme = region in programme.regions
                Recycler(
                    self, region, r, sources,
                    collection_rate=max(market.collection_rate, programme.rate if in_programme else 0.0),
                    subsidy_usd_per_kg=programme.subsidy_usd_per_kg if in_programme else 0.0,
                )
        if spec.stockpile.months > 0:
            for region in spec.stockpile.regions:
                need = sum((imp.base_need for imp in importers if imp.region == region), np.zeros(n_elements))
                if need.sum() > 0:
                    reserve = spec.stockpile.initial_fill * spec.stockpile.months * need
                    StrategicStockpile(self, region, index[region], reserve, spec.stockpile, self.base_price[:, index[region]])

    def _contract_origins(self, region: str, separation_share: np.ndarray) -> tuple[np.ndarray, float, float]:
        """A region's contract book as shares of its trend need by origin (they sum to the
        contracted share), with the part partnerships add and the part the diversification
        cap moved away from the largest origin (what their premiums are paid on).

        Partnership offtake comes on top of the ordinary book, spread over the partners in
        proportion to their separation capacity; like every contract it is served before
        the spot market, pro rata with the other contracts on the same origin."""
        spec = self.spec
        origin = spec.contracts.share * separation_share
        diversified = 0.0
        if spec.contracts.max_origin_share < 1.0 and region in spec.contracts.regions:
            capped = spec.contracts.share * capped_shares(separation_share, spec.contracts.max_origin_share)
            diversified = 0.5 * float(np.abs(capped - origin).sum())
            origin = capped
        partners = np.isin(np.array(self.regions), spec.partnership.partners) * separation_share
        partnership = 0.0
        if spec.partnership.share > 0 and region in spec.partnership.regions and partners.sum() > 0:
            partnership = spec.partnership.share
            origin = origin + partnership * partners / partners.sum()
        return origin, partnership, diversified

    def _init_state(self) -> None:
        n_elements, n_regions = len(self.elements), len(self.regions)
        self.nations = self.agents_by_type[ExportingNation]
        self.refiners = self.agents_by_type[Refiner]
        self.importers = self.agents_by_type[Importer]
        self.recyclers = self.agents_by_type[Recycler]
        self.stockpiles = self.agents_by_type.get(StrategicStockpile, [])
        self._sellers = list(self.refiners) + list(self.recyclers) + list(self.stockpiles)
        self._importers = list(self.importers)
        self._buyers = self._importers + list(self.stockpiles)
        self._buyer_region = np.array([buyer.region_index for buyer in self._buyers])
        onehot = (self._buyer_region[:, None] == np.arange(n_regions)[None, :]).astype(float)  # [B, R]
        self._buyer_onehot, self._importer_onehot = onehot, onehot[: len(self._importers)]
        self.importing_regions = tuple(sorted({imp.region for imp in self._importers}, key=self.regions.index))
        self._importing_index = [self.regions.index(r) for r in self.importing_regions]
        self.exporters = tuple(n.code for n in self.nations)
        has_market = {s.region for s in self._sellers} | set(self.importing_regions)
        self.price_zones = tuple(c for c in self.exporters if c in has_market) + (WORLD,)
        importing = np.isin(np.array(self.regions), self.importing_regions)
        self.world_regions = importing & (np.array(self.regions) != self.spec.shock.exporter)
        pairs = self.spec.tension.parsed_pairs
        self._importer_pair = [
            next((i for i, (a, x) in enumerate(pairs) if a == imp.region and x == self.spec.shock.exporter), None)
            for imp in self._importers
        ]
        substitution = self.spec.substitution
        self._substituting = [
            imp for imp in self._importers if imp.sector == "magnets" and imp.region in substitution.regions
        ]
        self._substituted_elements = np.isin(self.elements, substitution.elements)

        self.regional_price = self.base_price.copy()  # [E, R]
        self._previous_position = np.zeros((n_elements, n_regions))
        for seller in self._sellers:
            self._previous_position[:, seller.region_index] += seller.oxide
        self.tension = np.full(len(pairs), self.spec.tension.mean)
        self._collect_importers()
        self.price = self._zone_prices()
        self.quota = np.full((n_elements, len(self.exporters)), np.nan)
        self.supply_by_origin = np.zeros((n_elements, n_regions))
        self.mined = np.zeros((n_elements, len(self.exporters)))
        self.exports = np.zeros((n_elements, len(self.exporters)))
        self.unofficial_exports = np.zeros((n_elements, len(self.exporters)))
        self.trade = np.zeros((n_elements, n_regions, n_regions))  # [E, from, to] t this month
        self.cumulative_trade = np.zeros_like(self.trade)  # [E, from, to] t delivered to importers so far
        self.restricted = np.zeros((n_elements, n_regions, n_regions), dtype=bool)
        self.policy_cost = np.zeros(len(self.programmes.names))
        self.trade_price = self.regional_price.copy()
        self.recycled = np.zeros(n_elements)
        self.consumed = np.zeros(n_elements)
        self.losses = np.zeros(n_elements)
        self.stocks = self._total_stocks()

    # ------------------------------------------------------------------- step
    def step(self) -> None:
        """One month, in the order of docs/ODD.md §3 (process overview)."""
        self._set_export_rules()
        self._produce()
        self._trade_concentrate()
        self.refiners.do("separate", self.market.separation_yield)
        self.recyclers.do("recycle", self.regional_price, self.reference_price,
                          self.spec.recycling.collection_cost_ratio)
        self._stockpile_decisions()
        self._plan_purchases()
        self._clear_markets()
        self._invest()
        self.programmes.account(self, self.month)
        self.policy_cost = self.programmes.cost
        self._record_flows()
        self.month += 1
        self.datacollector.collect(self)
        self.running = self.month < self.spec.horizon_months

    def _set_export_rules(self) -> None:
        """Tension evolves (an agreement lowers it until breached); each nation sets its
        export cap and bans; scripted outages and partner disruptions take effect."""
        programmes = self.programmes
        self.tension = evolve_tension(
            self.tension, self.spec.tension, self.rng, mean=programmes.tension_means()
        )
        self.tension = programmes.check_breach(self.tension, self.month)
        rules = export_rules(
            self.spec, self.month, self.tension, self.regions, self.elements, self.deposits,
            guaranteed_share=programmes.guaranteed_share(),
        )
        availability = programmes.partner_availability()
        self._outage = rules.outage.copy()
        for nation in self.nations:
            i = nation.region_index
            tonnage = tuple((tonnes, covered) for row, tonnes, covered in rules.tonnage_quotas if row == i)
            nation.set_export_policy(rules.quota_cut[i], rules.banned[i], tonnage, rules.export_tax[i])
            kept = availability.get(nation.code, 1.0)
            self._outage[nation.region_index] = 1.0 - (1.0 - self._outage[nation.region_index]) * kept
        for refiner in self.refiners:
            refiner.availability = availability.get(refiner.region, 1.0)
        # allowed[e, a, b]: may region a sell element e to region b this month
        self._allowed = np.ones((len(self.elements), len(self.regions), len(self.regions)), dtype=bool)
        for nation in self.nations:
            self._allowed[:, nation.region_index, :] = ~nation.banned
        self.quota = np.stack([n.export_cap for n in self.nations], axis=1)
        self.quota[np.isinf(self.quota)] = np.nan
        # [E, X] t that may leave outside each exporter's quota (none when smuggling is off)
        self._unofficial = np.zeros((len(self.elements), len(self.exporters)))
        if self.market.smuggling_share > 0:
            world_price = self.world_price(self.regional_price)
            for k, nation in enumerate(self.nations):
                self._unofficial[:, k] = nation.unofficial_allowance(
                    world_price, self.regional_price[:, nation.region_index], self.market.smuggling_share
                )

    def _produce(self) -> None:
        """Mines run on the price producers get at home, a price floor included."""
        floor = self.spec.price_floor
        floor_on = self.programmes.floor_in_force(self.month)
        covered = np.isin(self.elements, floor.elements)
        for nation in self.nations:
            price = self.regional_price[:, nation.region_index]
            if floor_on and nation.code == floor.region:
                price = np.where(covered, np.maximum(price, floor.usd_per_kg), price)
            nation.produce(price, self.market.supply_elasticity, self._outage[nation.region_index])

    def _trade_concentrate(self) -> None:
        """Refiners buy mixed concentrate: their priority source first, then any nation
        that does not ban them; concentrate nobody can take stays at the mine."""
        nations, refiners = list(self.nations), list(self.refiners)
        supply = np.array([n.concentrate_total for n in nations])
        wanted = np.array([r.feed_wanted for r in refiners])
        source = np.array([n.region_index for n in nations])
        destination = np.array([r.region_index for r in refiners])
        # A mixed concentrate carries every element, so a ban on any element stops it.
        blocked = ~self._allowed.all(axis=0)[source][:, destination]
        open_links = np.where(blocked, 0.0, np.inf)
        priority = np.where(source[:, None] == np.array([r.feed_priority for r in refiners])[None, :], np.inf, 0.0)
        first = prorata_fill(supply, wanted, np.minimum(priority, open_links))
        second = prorata_fill(supply - first.sum(axis=1), wanted - first.sum(axis=0), open_links)
        for i, nation in enumerate(nations):
            for k, refiner in enumerate(refiners):
                tonnes = first[i, k] + second[i, k]
                if tonnes > 0:
                    refiner.take_feed(nation.ship_concentrate(tonnes), tonnes)

    def _stockpile_decisions(self) -> None:
        """Each strategic stockpile releases on shortage or a price spike, or refills."""
        if not self.stockpiles:
            return
        shortfall = self._by_region(self._per_importer("shortfall"))
        trend_need = self._by_region(np.stack([imp.trend_need() for imp in self._importers], axis=1))
        for stock in self.stockpiles:
            r = stock.region_index
            stock.decide(self.spec.stockpile.months * trend_need[:, r], self.regional_price[:, r], shortfall[:, r])

    def _plan_purchases(self) -> None:
        for importer in self._substituting:
            importer.intensity = self.programmes.intensity_after_substitution(
                importer.intensity, self._substituted_elements, self.month
            )
        noise = np.exp(self.market.demand_volatility * self.rng.standard_normal((len(self._importers), len(self.elements))))
        for k, importer in enumerate(self._importers):
            pair = self._importer_pair[k]
            tension = 0.0 if pair is None else float(self.tension[pair])
            importer.plan_purchases(self.regional_price[:, importer.region_index], tension, noise[k])

    def _clear_markets(self) -> None:
        """Contracts, then spot; sellers give up stock pro rata; prices move on inventory."""
        n_elements, n_regions = len(self.elements), len(self.regions)
        available = np.zeros((n_elements, n_regions))
        for seller in self._sellers:
            available[:, seller.region_index] += seller.oxide
        want = np.stack([buyer.want for buyer in self._buyers], axis=1)  # [E, B]
        contract = np.zeros((n_elements, n_regions, len(self._buyers)))
        contract[:, :, : len(self._importers)] = np.stack([imp.contract_volume for imp in self._importers], axis=2)
        export_cap = np.full((n_elements, n_regions), np.inf)
        for k, nation in enumerate(self.nations):
            export_cap[:, nation.region_index] = nation.export_cap + self._unofficial[:, k]
        allowed = self._allowed
        clearing = clear_markets(available, want, contract, self._buyer_region, export_cap, allowed)

        self.trade_price = self.regional_price.copy()  # what this month's trade was priced at
        sold = clearing.sold
        with np.errstate(divide="ignore", invalid="ignore"):
            sold_fraction = np.where(available > 0, sold / available, 0.0)
        for seller in self._sellers:
            seller.sell(sold_fraction[:, seller.region_index])
        received, contract_received = clearing.received, clearing.contract_flow.sum(axis=1)
        for k, importer in enumerate(self._importers):
            importer.consume(received[:, k], contract_received[:, k], self.regional_price[:, importer.region_index])
        for k, stock in enumerate(self.stockpiles, start=len(self._importers)):
            stock.receive(received[:, k])

        trade = clearing.flow @ self._buyer_onehot  # [E, R_from, R_to]
        exports = trade.sum(axis=2) - np.einsum("err->er", trade)
        for nation in self.nations:
            nation.record_exports(exports[:, nation.region_index])
        exported = exports[:, [n.region_index for n in self.nations]]  # [E, X]
        # Smugglers ship first (they undercut licensed exporters); customs see the rest.
        self.unofficial_exports = np.minimum(self._unofficial, exported)
        self.exports = exported - self.unofficial_exports
        self._collect_importers()
        leftover = available - sold
        unmet = (want - received) @ self._buyer_onehot
        need = self.demand_by_region
        unmet = np.maximum(unmet, 0.0)
        areas = price_areas(allowed, clearing.export_cap_left, trade, unmet, leftover)
        position = leftover - unmet
        self.regional_price = update_prices(
            self.regional_price, areas, need + available, position, self._previous_position, need,
            self.reference_price, self.market.price_adjustment, self.market.target_cover_months,
            self.market.trend_months, self.market.min_price_ratio, self.market.arbitrage_months,
            markup=self._tax_markup(areas),
        )
        self._previous_position = position
        # A region with no market of its own (mines only) quotes the world price.
        idle = (need + available).sum(axis=0) <= 0
        self.regional_price[:, idle] = self.world_price(self.regional_price)[:, None]
        self.price = self._zone_prices()
        self.supply_by_origin = sold
        self.trade = trade
        # Supply to manufacturers only: a stockpile's purchases are not yet use.
        self.cumulative_trade += clearing.flow[:, :, : len(self._importers)] @ self._importer_onehot
        # A link is restricted when a ban closes it or its exporter's quota is used up.
        quota_binding = np.isfinite(export_cap) & (clearing.export_cap_left <= 1e-9)
        self.restricted = ~allowed | quota_binding[:, :, None]

    def _tax_markup(self, areas: np.ndarray) -> np.ndarray:
        """[E, R] how far each region's price sits above its area's untaxed price: a
        region that shares a price area with a taxing exporter buys from it at its
        domestic price plus the export tax (the pre-2010 gap between China's domestic
        and FOB prices). With several taxing exporters in one area the highest tax sets
        the price (the marginal supplier); an exporter's own price carries no markup."""
        tax = np.zeros((len(self.elements), len(self.regions)))
        for nation in self.nations:
            if not nation.export_tax.any():
                continue
            abroad = areas[:, nation.region_index, :].copy()
            abroad[:, nation.region_index] = False
            tax = np.maximum(tax, np.where(abroad, nation.export_tax[:, None], 0.0))
        for nation in self.nations:
            if nation.export_tax.any():
                tax[:, nation.region_index] = 0.0
        return 1.0 + tax

    def _invest(self) -> None:
        """Existing capacity grows at the trend rate; lever-built plants follow their ramp."""
        factor = (1.0 + self.market.capacity_growth_per_year) ** (1.0 / 12.0)
        self.nations.do("grow", factor)
        self.refiners.do("grow", factor)

    # --------------------------------------------------------------- records
    def _by_region(self, per_importer: np.ndarray) -> np.ndarray:
        """Sum a per-importer [E, B] array into [E, R]."""
        return per_importer @ self._importer_onehot

    def _per_importer(self, attribute: str) -> np.ndarray:
        """[E, B] one importer attribute, importers in model order."""
        return np.stack([getattr(imp, attribute) for imp in self._importers], axis=1)

    def _zone_prices(self) -> np.ndarray:
        """[E, Z] posted prices: each exporter's domestic zone, then the world market:
        the need-weighted mean price paid by importers outside the dominant exporter."""
        columns = [self.regional_price[:, self.regions.index(code)] for code in self.price_zones[:-1]]
        return np.stack([*columns, self.world_price(self.regional_price)], axis=1)

    def world_price(self, regional_price: np.ndarray) -> np.ndarray:
        """[E] the world market's price: need-weighted over importers outside the exporter."""
        weight = self.demand_by_region[:, self.world_regions] + 1e-12
        return (regional_price[:, self.world_regions] * weight).sum(axis=1) / weight.sum(axis=1)

    def _importing(self, attribute: str) -> np.ndarray:
        return self._by_region(self._per_importer(attribute))[:, self._importing_index]

    def _collect_importers(self) -> None:
        self.demand_by_region = self._by_region(self._per_importer("need"))
        self.demand = self.demand_by_region[:, self._importing_index]
        self.supply = self._importing("received")
        self.shortfall = self._importing("shortfall")
        self.stockpile = self._importing("stock")
        self.spend = self._importing("spend")
        strategic = np.zeros((len(self.elements), len(self.regions)))
        for stock in self.stockpiles:
            strategic[:, stock.region_index] += stock.reserve + stock.oxide
        self.strategic_stock = strategic[:, self._importing_index]

    def _record_flows(self) -> None:
        zero = np.zeros(len(self.elements))
        self.mined = np.stack([n.mined for n in self.nations], axis=1)
        self.recycled = sum((r.recycled for r in self.recyclers), zero)
        self.consumed = sum((imp.consumed for imp in self._importers), zero)
        self.losses = sum((r.losses for r in self.refiners), zero)
        self.stocks = self._total_stocks()

    def _total_stocks(self) -> np.ndarray:
        """[E] t held anywhere: concentrate, refiners' feed, sellers' oxide, importers'
        working stock, strategic reserves."""
        zero = np.zeros(len(self.elements))
        return (
            sum((n.concentrate for n in self.nations), zero)
            + sum((r.feed for r in self.refiners), zero)
            + sum((s.oxide for s in self._sellers), zero)
            + sum((imp.stock for imp in self._importers), zero)
            + sum((s.reserve for s in self.stockpiles), zero)
        )

    def labels(self) -> dict[str, tuple[str, ...]]:
        """Labels of the region axis of each recorded array (the element axis, where there
        is one, follows ``elements``)."""
        return {
            "price": self.price_zones,
            "demand": self.importing_regions,
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
        }
