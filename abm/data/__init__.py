"""Calibration tables, read from the CSV files beside this module.

Each CSV has one row per fact and a ``source`` column; this module only parses and
shapes them into arrays indexed by the element and region orders defined here, so
the rest of the package never reads a file. A missing source or a malformed number
fails loudly at load time, not as a wrong figure later.

The default world is base year 2024 (the files in this folder). Another base year
lives in a folder ``base_<year>/`` that holds only the tables that differ (mines,
refiners, prices, regional demand shares, projects); every other table, and the behavioural
parameters, are shared, so the two worlds differ in facts, not in behaviour.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent
DEFAULT_BASE_YEAR = 2024
# Base years with a calibration: the default, and each ``base_<year>/`` folder.
BASE_YEARS: tuple[int, ...] = (DEFAULT_BASE_YEAR,) + tuple(
    sorted(int(d.name.removeprefix("base_")) for d in DATA_DIR.glob("base_[0-9]*") if d.is_dir())
)


@dataclass(frozen=True)
class Parameter:
    """A behavioural parameter's default, its plausible range and where both come from."""

    section: str
    name: str
    value: float | int  # int where the table writes a whole number (months, counts)
    low: float
    high: float
    unit: str
    source: str


@dataclass(frozen=True)
class Project:
    """Mine or separation capacity that history brought online after the base year (a
    base year's ``projects.csv``): ``target`` is the deposit type of a mine, or the
    nation a refinery takes its feed from first."""

    kind: str  # "mine" or "refinery"
    nation: str
    target: str
    capacity_t_per_year: float
    online: str  # YYYY-MM, first month of output
    ramp_months: int


@dataclass(frozen=True)
class Calibration:
    """Base-year world: every array is indexed by ``elements`` and ``regions`` order."""

    base_year: int
    elements: tuple[str, ...]
    reference_price: np.ndarray  # [E] USD/kg
    regions: tuple[str, ...]
    deposits: tuple[str, ...]
    basket: np.ndarray  # [D, E] share of each oxide in a deposit's total REO
    mines: tuple[tuple[str, str, float], ...]  # (nation, deposit, capacity t REO/yr)
    refiners: tuple[tuple[str, float, str], ...]  # (nation, capacity t REO/yr, feed priority)
    projects: tuple["Project", ...]  # capacity that comes online after the base year
    sectors: tuple[str, ...]
    demand_growth: np.ndarray  # [S] 1/yr
    product_lifetime_years: np.ndarray  # [S]
    recyclable_fraction: np.ndarray  # [S]
    sector_share: np.ndarray  # [E, S] share of an element's demand by sector
    region_share: np.ndarray  # [S, R] share of a sector's demand by region
    parameters: tuple[Parameter, ...]

    def parameter_defaults(self, section: str) -> dict[str, float]:
        """Default values of one section of ``parameters.csv``."""
        return {p.name: p.value for p in self.parameters if p.section == section}

    def basket_of(self, deposit: str) -> np.ndarray:
        return self.basket[self.deposits.index(deposit)]

    @property
    def mined_by_deposit(self) -> np.ndarray:
        """[D] t REO/yr of base-year mine capacity of each deposit type (``deposits`` order), all nations."""
        mined = np.zeros(len(self.deposits))
        for _, deposit, capacity in self.mines:
            mined[self.deposits.index(deposit)] += capacity
        return mined

    @property
    def producers(self) -> tuple[str, ...]:
        """Regions that mine or separate, now or once their projects are online, in region
        order: only they have exports to restrict."""
        active = {n for n, _, _ in self.mines} | {n for n, _, _ in self.refiners} | {p.nation for p in self.projects}
        return tuple(r for r in self.regions if r in active)

    @property
    def separators(self) -> tuple[str, ...]:
        """Regions that separate, now or once their refinery projects are online, in region order."""
        active = {n for n, _, _ in self.refiners} | {p.nation for p in self.projects if p.kind == "refinery"}
        return tuple(r for r in self.regions if r in active)


def month_index(date: str, start_year: int) -> int:
    """Months from January of ``start_year`` to ``date`` (``YYYY-MM``): model month of a
    dated fact (a project coming online, an observation)."""
    year, month = (int(part) for part in date.split("-"))
    return (year - start_year) * 12 + month - 1


def table_path(name: str, base_year: int = DEFAULT_BASE_YEAR) -> Path:
    """The file of table ``name`` for ``base_year``: its own version if the base year has one."""
    own = DATA_DIR / f"base_{base_year}" / name
    return own if base_year != DEFAULT_BASE_YEAR and own.exists() else DATA_DIR / name


def read_table(name: str, base_year: int = DEFAULT_BASE_YEAR) -> list[dict[str, str]]:
    """Rows of one sourced table; a row without a source is refused."""
    path = table_path(name, base_year)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=2):
        if not row.get("source", "").strip():
            raise ValueError(f"{path}:{number}: every row needs a source")
    return rows


def _number(text: str) -> float | int:
    """A whole number stays an int (a month count), anything else is a float."""
    return int(text) if text.strip().lstrip("-").isdigit() else float(text)


def _share_matrix(
    rows: list[dict[str, str]], row_key: str, col_key: str, row_names, col_names, path: str
) -> np.ndarray:
    matrix = np.zeros((len(row_names), len(col_names)))
    for row in rows:
        matrix[row_names.index(row[row_key]), col_names.index(row[col_key])] = float(row["share"])
    sums = matrix.sum(axis=1)
    if not np.allclose(sums, 1.0):
        raise ValueError(f"{path}: shares per {row_key} must sum to 1, got {dict(zip(row_names, sums, strict=True))}")
    return matrix


@cache
def load_calibration(base_year: int = DEFAULT_BASE_YEAR) -> Calibration:
    """Read and check every table of ``base_year`` once per process. Its arrays are
    shared by every model in the process, so they are read-only: a model that modified
    one would change the next run's inputs."""
    if base_year not in BASE_YEARS:
        raise ValueError(f"no calibration for base year {base_year}; there is one for {BASE_YEARS}")
    calibration = _read_calibration(base_year)
    for value in vars(calibration).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return calibration


def _read_calibration(base_year: int) -> Calibration:
    def rows(name: str) -> list[dict[str, str]]:
        return read_table(name, base_year)

    element_rows = rows("elements.csv")
    elements = tuple(r["element"] for r in element_rows)
    regions = tuple(r["region"] for r in rows("regions.csv"))
    deposit_rows = rows("deposits.csv")
    sector_rows = rows("sectors.csv")
    sectors = tuple(r["sector"] for r in sector_rows)
    mines = tuple(
        (r["nation"], r["deposit"], float(r["capacity_t_per_year"])) for r in rows("mines.csv")
    )
    refiners = tuple(
        (r["nation"], float(r["separation_capacity_t_per_year"]), r["feed_priority"])
        for r in rows("refiners.csv")
    )
    deposits = tuple(r["deposit"] for r in deposit_rows)
    projects = tuple(
        Project(
            r["kind"], r["nation"], r["deposit_or_feed"], float(r["capacity_t_per_year"]), r["online"],
            int(r["ramp_months"]),
        )
        for r in rows("projects.csv")
    )
    for project in projects:
        known = deposits if project.kind == "mine" else regions
        if project.kind not in ("mine", "refinery") or project.nation not in regions or project.target not in known:
            raise ValueError(f"projects.csv: unknown kind, nation or target in {project}")
    for nation, deposit, _ in mines:
        if nation not in regions or deposit not in deposits:
            raise ValueError(f"mines.csv: unknown nation or deposit {nation}/{deposit}")
    for nation, _, feed in refiners:
        if nation not in regions or feed not in regions:
            raise ValueError(f"refiners.csv: unknown region {nation}/{feed}")
    return Calibration(
        base_year=base_year,
        elements=elements,
        reference_price=np.array([float(r["reference_price_usd_per_kg"]) for r in element_rows]),
        regions=regions,
        deposits=deposits,
        basket=np.array([[float(r[e]) for e in elements] for r in deposit_rows]),
        mines=mines,
        refiners=refiners,
        projects=projects,
        sectors=sectors,
        demand_growth=np.array([float(r["demand_growth_per_year"]) for r in sector_rows]),
        product_lifetime_years=np.array([float(r["product_lifetime_years"]) for r in sector_rows]),
        recyclable_fraction=np.array([float(r["recyclable_fraction"]) for r in sector_rows]),
        sector_share=_share_matrix(
            rows("demand_by_sector.csv"), "element", "sector", elements, sectors, "demand_by_sector.csv"
        ),
        region_share=_share_matrix(
            rows("demand_by_region.csv"), "sector", "region", sectors, regions, "demand_by_region.csv"
        ),
        parameters=tuple(
            Parameter(
                r["section"], r["name"], _number(r["value"]), float(r["low"]), float(r["high"]),
                r["unit"], r["source"],
            )
            for r in rows("parameters.csv")
        ),
    )
