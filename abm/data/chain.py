"""The supply chain of one base year: products, recipes, plants and magnet end uses.

Products run through four stages: concentrate (one per deposit of deposits.csv, its
content the deposit's basket) -> oxide (one per element) -> metal -> magnet. Content is
t of each element's oxide (REO equivalent) per t of product, so every stage is
mass-balanced in one unit. Separation is derived (basket x separation yield, parameters.csv
``market.separation_yield``), and which oxides each nation's separators yield from which
month is data (separation_scope.csv); metal and magnet recipes are data (recipes.csv), their losses
implied by content: per element, output content = yield x input content, with one yield
per recipe. The tables and their sources are described in README.md beside this module.

Like ``abm.data.load_calibration`` this module only parses, checks and shapes: a table a
base year does not override falls back to the 2024 file (``abm.data.table_path``), and a
malformed row fails at load time with one ValueError naming the file, line and value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from abm.data import DEFAULT_BASE_YEAR, Calibration, load_calibration, read_table, table_path

STAGES = ("concentrate", "oxide", "metal", "magnet")
# Stage whose products each made stage converts (recipes.csv); separation is derived.
INPUT_STAGE = {"metal": "oxide", "magnet": "metal"}
PLANT_STAGES = tuple(INPUT_STAGE)
MAGNET_STAGE = "magnet"
YIELD_TOLERANCE = 1e-3  # relative spread allowed between the element yields of one recipe
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
NEVER = "never"  # separation_scope.csv: no dated start, the oxide is not separated in any run


@dataclass(frozen=True)
class PlantProject:
    """Metal or magnet capacity announced to come online after the base year."""

    stage: str
    nation: str
    capacity_t_per_year: float  # t of output (metal, finished magnet) per year
    online: str  # YYYY-MM, first month of output
    ramp_months: int


@dataclass(frozen=True)
class SupplyChain:
    """The stages and products of one base year; every array is read-only.

    Shapes: P products, E elements (``Calibration.elements`` order), R regions
    (``Calibration.regions`` order), U magnet end uses. Units: t/yr, USD/kg of product.
    """

    base_year: int
    products: tuple[str, ...]  # [P] concentrates (deposit order), oxides (element order), metals, magnets
    stage: tuple[str, ...]  # [P] "concentrate" | "oxide" | "metal" | "magnet"
    unit: tuple[str, ...]  # [P]
    content: np.ndarray  # [P, E] t element oxide per t product
    recipe: np.ndarray  # [P, P] t input (column) per t output (row); metal and magnet rows only
    separation: np.ndarray  # [P, P] t oxide (row) per t REO of concentrate (column)
    conversion_cost: np.ndarray  # [P] USD/kg: mining cash cost, separation, metal or magnet making
    conversion_cost_range: np.ndarray  # [P, 2] low, high
    trade_cost: np.ndarray  # [P] ad valorem fraction of a shipment's value, by stage
    lead_months: dict[str, int]  # by stage: decision to first output of new capacity
    ramp_months: dict[str, int]  # by stage: first output to full capacity
    plants: tuple[tuple[str, str, float], ...]  # (stage, nation, t output/yr), metal and magnet
    plant_projects: tuple[PlantProject, ...]
    # by separating nation: [E] first month (YYYY-MM) its separation plants yield each
    # element's oxide, None where never (separation_scope.csv)
    separation_from: dict[str, tuple[str | None, ...]]
    end_uses: tuple[str, ...]  # [U]
    end_use_growth: np.ndarray  # [U] 1/yr
    end_use_lifetime_years: np.ndarray  # [U]
    end_use_recyclable: np.ndarray  # [U] fraction of end-of-life magnets that can be recovered
    end_use_inventory_months: np.ndarray  # [U] working stock of magnets a manufacturer holds
    grade_mix: np.ndarray  # [U, P] mass share of each magnet product, rows sum to 1
    magnet_use_share: np.ndarray  # [U, R] share of world magnet use, sums to 1

    def stage_products(self, stage: str) -> tuple[int, ...]:
        """Indices of the products of ``stage``, in product order."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; the stages are {STAGES}")
        return tuple(i for i, s in enumerate(self.stage) if s == stage)


@cache
def load_supply_chain(base_year: int = DEFAULT_BASE_YEAR) -> SupplyChain:
    """Read and check the supply-chain tables of ``base_year`` once per process; the
    arrays are shared by every model in the process, so they are read-only."""
    chain = _read_supply_chain(load_calibration(base_year))
    for value in vars(chain).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return chain


@dataclass(frozen=True)
class _Table:
    """One sourced table with line-numbered, checked access to its cells."""

    path: Path
    rows: tuple[dict[str, str], ...]

    @classmethod
    def read(cls, name: str, base_year: int) -> _Table:
        return cls(table_path(name, base_year), tuple(read_table(name, base_year)))

    def lines(self):
        return enumerate(self.rows, start=2)  # line 1 is the header

    def error(self, line: int | str, message: str) -> ValueError:
        return ValueError(f"{self.path}:{line}: {message}")

    def number(self, line: int, row: dict[str, str], column: str) -> float:
        text = row.get(column)
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise self.error(line, f"{column} {text!r} is not a number") from None
        if not np.isfinite(value) or value < 0:
            raise self.error(line, f"{column} {text!r} must be a non-negative number")
        return value

    def name(self, line: int, row: dict[str, str], column: str, known) -> str:
        value = row.get(column)
        if value not in known:
            raise self.error(line, f"unknown {column} {value!r}; known: {', '.join(known)}")
        return value


def _read_supply_chain(calibration: Calibration) -> SupplyChain:
    year = calibration.base_year
    products, stage, unit, content = _products(_Table.read("products.csv", year), calibration)
    recipe = _recipes(_Table.read("recipes.csv", year), products, stage, content)
    cost, cost_range, lead, ramp = _stages(_Table.read("stages.csv", year), stage)
    end_uses, end_use_columns = _end_uses(_Table.read("end_uses.csv", year))
    return SupplyChain(
        base_year=year,
        products=products,
        stage=stage,
        unit=unit,
        content=content,
        recipe=recipe,
        separation=_separation(calibration, products, stage),
        conversion_cost=cost,
        conversion_cost_range=cost_range,
        trade_cost=_trade_costs(_Table.read("trade_costs.csv", year), stage),
        lead_months=lead,
        ramp_months=ramp,
        plants=_plants(_Table.read("plants.csv", year), calibration.regions),
        plant_projects=_plant_projects(_Table.read("plant_projects.csv", year), calibration.regions),
        separation_from=_separation_scope(_Table.read("separation_scope.csv", year), calibration),
        end_uses=end_uses,
        **end_use_columns,
        grade_mix=_grade_mix(_Table.read("magnet_grades.csv", year), end_uses, products, stage),
        magnet_use_share=_magnet_use(_Table.read("magnet_use.csv", year), end_uses, calibration.regions),
    )


def _products(table: _Table, calibration: Calibration):
    """Concentrates from deposits.csv, then products.csv grouped by stage in stage order.
    Oxides must be one per element, in element order, each of content 1 of its element."""
    elements = calibration.elements
    listed = []  # (stage order, name, stage, unit, content [E])
    for line, row in table.lines():
        if not row.get("product"):
            raise table.error(line, "a product needs a name")
        stage = table.name(line, row, "stage", STAGES[1:])
        content = [table.number(line, row, e) for e in elements]
        listed.append((STAGES.index(stage), row["product"], stage, row.get("unit", ""), content))
        if stage == MAGNET_STAGE and content[elements.index("Nd")] <= 0:
            raise table.error(line, f"magnet grade {row['product']!r} has no Nd: Nd {row.get('Nd')!r}")
    listed.sort(key=lambda item: item[0])  # stable: file order within a stage
    rows = [(f"conc_{d}", "concentrate", "t REO", list(b)) for d, b in zip(calibration.deposits, calibration.basket, strict=True)]
    rows += [item[1:] for item in listed]
    names = [r[0] for r in rows]
    if len(set(names)) < len(names):
        raise table.error("-", f"duplicate product in {names}")
    oxides = [r for r in rows if r[1] == "oxide"]
    expected = [(f"{e}_oxide", list(np.eye(len(elements))[i])) for i, e in enumerate(elements)]
    if [(r[0], r[3]) for r in oxides] != expected:
        raise table.error("-", f"oxides must be {[n for n, _ in expected]}, each of content 1 of its element")
    return tuple(names), tuple(r[1] for r in rows), tuple(r[2] for r in rows), np.array([r[3] for r in rows])


def _recipes(table: _Table, products, stage, content: np.ndarray) -> np.ndarray:
    """[P, P] t input per t output; each metal and magnet needs a recipe of its input stage,
    and one yield in (0.5, 1] for all its elements (content out / content in)."""
    recipe = np.zeros((len(products), len(products)))
    for line, row in table.lines():
        output = products.index(table.name(line, row, "output", products))
        made = stage[output]
        if made not in INPUT_STAGE:
            raise table.error(line, f"{products[output]!r} is a {made}: only metals and magnets have recipes")
        inputs = [p for p, s in zip(products, stage, strict=True) if s == INPUT_STAGE[made]]
        recipe[output, products.index(table.name(line, row, "input", inputs))] += table.number(
            line, row, "t_input_per_t_output"
        )
    for output in (i for i, s in enumerate(stage) if s in INPUT_STAGE):
        _check_yield(table, products[output], content[output], recipe[output] @ content)
    return recipe


def _check_yield(table: _Table, product: str, made: np.ndarray, used: np.ndarray) -> None:
    present = (made > 0) | (used > 0)
    if not present.any():
        raise table.error("-", f"{product!r} has no recipe")
    with np.errstate(divide="ignore", invalid="ignore"):
        yields = np.where(used > 0, made / used, np.inf)[present]
    spread = yields.max() - yields.min()
    if not (yields.min() > 0.5 and yields.max() <= 1.0 + YIELD_TOLERANCE) or spread > YIELD_TOLERANCE * yields.max():
        raise table.error("-", f"recipe of {product!r}: element yields {np.round(yields, 4).tolist()} must be one value in (0.5, 1]")


def _separation(calibration: Calibration, products, stage) -> np.ndarray:
    """[P, P] t of each oxide per t REO of each concentrate: basket x separation yield."""
    separation_yield = calibration.parameter_defaults("market")["separation_yield"]
    separation = np.zeros((len(products), len(products)))
    concentrates = [i for i, s in enumerate(stage) if s == "concentrate"]
    oxides = [i for i, s in enumerate(stage) if s == "oxide"]
    separation[np.ix_(oxides, concentrates)] = calibration.basket.T * separation_yield
    return separation


def _stages(table: _Table, stage):
    """Per-product conversion cost and range (USD/kg) from its stage, lead and ramp months."""
    by_stage = {}
    for line, row in table.lines():
        name = table.name(line, row, "stage", STAGES)
        low, value, high = (table.number(line, row, c) for c in ("low", "conversion_cost_usd_per_kg", "high"))
        if not low <= value <= high:
            raise table.error(line, f"conversion cost {value} must lie in its range [{low}, {high}]")
        months = [table.number(line, row, c) for c in ("lead_months", "ramp_months")]
        by_stage[name] = (value, low, high, *(int(m) for m in months))
    _require_every(table, by_stage, STAGES, "stage")
    cost = np.array([by_stage[s][0] for s in stage])
    cost_range = np.array([by_stage[s][1:3] for s in stage])
    return cost, cost_range, {s: v[3] for s, v in by_stage.items()}, {s: v[4] for s, v in by_stage.items()}


def _trade_costs(table: _Table, stage) -> np.ndarray:
    by_stage = {}
    for line, row in table.lines():
        name = table.name(line, row, "stage", STAGES)
        low, value, high = (table.number(line, row, c) for c in ("low", "trade_cost_fraction", "high"))
        if not low <= value <= high < 1:
            raise table.error(line, f"trade cost {value} must lie in its range [{low}, {high}], below 1")
        by_stage[name] = value
    _require_every(table, by_stage, STAGES, "stage")
    return np.array([by_stage[s] for s in stage])


def _require_every(table: _Table, found, names, what: str) -> None:
    missing = [n for n in names if n not in found]
    if missing:
        raise table.error("-", f"no row for {what} {missing}")


def _plants(table: _Table, regions) -> tuple[tuple[str, str, float], ...]:
    return tuple(
        (table.name(line, row, "stage", PLANT_STAGES), table.name(line, row, "nation", regions),
         table.number(line, row, "capacity_t_per_year"))
        for line, row in table.lines()
    )


def _plant_projects(table: _Table, regions) -> tuple[PlantProject, ...]:
    projects = []
    for line, row in table.lines():
        if not MONTH.fullmatch(row.get("online") or ""):
            raise table.error(line, f"online {row.get('online')!r} is not a YYYY-MM month")
        projects.append(PlantProject(
            table.name(line, row, "stage", PLANT_STAGES), table.name(line, row, "nation", regions),
            table.number(line, row, "capacity_t_per_year"), row["online"], int(table.number(line, row, "ramp_months")),
        ))
    return tuple(projects)


def _separation_scope(table: _Table, calibration: Calibration) -> dict[str, tuple[str | None, ...]]:
    """By separating nation (refiners.csv and refinery projects), [E] the first month its
    separation plants yield each element's oxide (``YYYY-MM``), None for ``never``. Every
    such nation must give every element of elements.csv exactly one row, so adding an
    element cannot leave it unseparated by omission."""
    elements = calibration.elements
    separating = calibration.separators
    start: dict[str, dict[str, str | None]] = {}
    for line, row in table.lines():
        nation = table.name(line, row, "nation", separating)
        month = (row.get("from_month") or "").strip()
        if month != NEVER and not MONTH.fullmatch(month):
            raise table.error(line, f"from_month {month!r} is not a YYYY-MM month or {NEVER!r}")
        listed = (row.get("elements") or "").split()
        if not listed:
            raise table.error(line, "elements is empty: name the elements, space-separated (e.g. 'Dy Tb')")
        for element in listed:
            if element not in elements:
                raise table.error(line, f"unknown element {element!r}; known: {', '.join(elements)}")
            if element in start.setdefault(nation, {}):
                raise table.error(line, f"{nation} gives {element} a second row")
            start[nation][element] = None if month == NEVER else month
    for nation in separating:
        missing = [e for e in elements if e not in start.get(nation, {})]
        if missing:
            raise table.error("-", f"separating nation {nation} has no row for {' '.join(missing)} (a month or {NEVER!r})")
    return {n: tuple(start[n][e] for e in elements) for n in separating}


END_USE_COLUMNS = {  # SupplyChain field: end_uses.csv column
    "end_use_growth": "demand_growth_per_year",
    "end_use_lifetime_years": "product_lifetime_years",
    "end_use_recyclable": "recyclable_fraction",
    "end_use_inventory_months": "inventory_months",
}


def _end_uses(table: _Table):
    names = tuple(row["end_use"] for row in table.rows)
    if len(set(names)) < len(names) or not all(names):
        raise table.error("-", f"end uses must be distinct and named: {names}")
    columns = {
        field: np.array([table.number(line, row, column) for line, row in table.lines()])
        for field, column in END_USE_COLUMNS.items()
    }
    for line, row in table.lines():
        if table.number(line, row, "recyclable_fraction") > 1:
            raise table.error(line, f"recyclable_fraction {row['recyclable_fraction']!r} exceeds 1")
    return names, columns


def _grade_mix(table: _Table, end_uses, products, stage) -> np.ndarray:
    """[U, P] mass share of each magnet grade in an end use's magnets; rows sum to 1."""
    magnets = [p for p, s in zip(products, stage, strict=True) if s == MAGNET_STAGE]
    mix = np.zeros((len(end_uses), len(products)))
    for line, row in table.lines():
        use = end_uses.index(table.name(line, row, "end_use", end_uses))
        mix[use, products.index(table.name(line, row, "product", magnets))] += table.number(line, row, "share")
    for use, total in zip(end_uses, mix.sum(axis=1), strict=True):
        if not np.isclose(total, 1.0):
            raise table.error("-", f"grade shares of end use {use!r} sum to {total:g}, not 1")
    return mix


def _magnet_use(table: _Table, end_uses, regions) -> np.ndarray:
    """[U, R] share of world magnet use by end use and buying region; sums to 1."""
    share = np.zeros((len(end_uses), len(regions)))
    for line, row in table.lines():
        use = end_uses.index(table.name(line, row, "end_use", end_uses))
        share[use, regions.index(table.name(line, row, "region", regions))] += table.number(line, row, "share")
    if not np.isclose(share.sum(), 1.0):
        raise table.error("-", f"shares sum to {share.sum():g}, not 1")
    return share
