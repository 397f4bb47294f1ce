"""Calibration tables for base year 2024, read from the CSV files beside this module.

Each CSV has one row per fact and a ``source`` column; this module only parses and
shapes them into arrays indexed by the element and region orders defined here, so
the rest of the package never reads a file. A missing source or a malformed number
fails loudly at load time, not as a wrong figure later.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent


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
class Calibration:
    """Base-year world: every array is indexed by ``elements`` and ``regions`` order."""

    elements: tuple[str, ...]
    reference_price: np.ndarray  # [E] USD/kg
    regions: tuple[str, ...]
    deposits: tuple[str, ...]
    basket: np.ndarray  # [D, E] share of each oxide in a deposit's total REO
    mines: tuple[tuple[str, str, float], ...]  # (nation, deposit, capacity t REO/yr)
    refiners: tuple[tuple[str, float, str], ...]  # (nation, capacity t REO/yr, feed priority)
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


def _rows(name: str) -> list[dict[str, str]]:
    path = DATA_DIR / name
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
        raise ValueError(f"{path}: shares per {row_key} must sum to 1, got {dict(zip(row_names, sums))}")
    return matrix


@cache
def load_calibration() -> Calibration:
    """Read and check every table once per process. Its arrays are shared by every model
    in the process, so they are read-only: a model that modified one would change the
    next run's inputs."""
    calibration = _read_calibration()
    for value in vars(calibration).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return calibration


def _read_calibration() -> Calibration:
    element_rows = _rows("elements.csv")
    elements = tuple(r["element"] for r in element_rows)
    regions = tuple(r["region"] for r in _rows("regions.csv"))
    deposit_rows = _rows("deposits.csv")
    sector_rows = _rows("sectors.csv")
    sectors = tuple(r["sector"] for r in sector_rows)
    mines = tuple(
        (r["nation"], r["deposit"], float(r["capacity_t_per_year"])) for r in _rows("mines.csv")
    )
    refiners = tuple(
        (r["nation"], float(r["separation_capacity_t_per_year"]), r["feed_priority"])
        for r in _rows("refiners.csv")
    )
    deposits = tuple(r["deposit"] for r in deposit_rows)
    for nation, deposit, _ in mines:
        if nation not in regions or deposit not in deposits:
            raise ValueError(f"mines.csv: unknown nation or deposit {nation}/{deposit}")
    for nation, _, feed in refiners:
        if nation not in regions or feed not in regions:
            raise ValueError(f"refiners.csv: unknown region {nation}/{feed}")
    return Calibration(
        elements=elements,
        reference_price=np.array([float(r["reference_price_usd_per_kg"]) for r in element_rows]),
        regions=regions,
        deposits=deposits,
        basket=np.array([[float(r[e]) for e in elements] for r in deposit_rows]),
        mines=mines,
        refiners=refiners,
        sectors=sectors,
        demand_growth=np.array([float(r["demand_growth_per_year"]) for r in sector_rows]),
        product_lifetime_years=np.array([float(r["product_lifetime_years"]) for r in sector_rows]),
        recyclable_fraction=np.array([float(r["recyclable_fraction"]) for r in sector_rows]),
        sector_share=_share_matrix(
            _rows("demand_by_sector.csv"), "element", "sector", elements, sectors, "demand_by_sector.csv"
        ),
        region_share=_share_matrix(
            _rows("demand_by_region.csv"), "sector", "region", sectors, regions, "demand_by_region.csv"
        ),
        parameters=tuple(
            Parameter(
                r["section"], r["name"], _number(r["value"]), float(r["low"]), float(r["high"]),
                r["unit"], r["source"],
            )
            for r in _rows("parameters.csv")
        ),
    )
