"""The calibration tables: sourced, consistent, and matching the facts they cite."""

import csv

import numpy as np
import pytest

from abm.data import DATA_DIR, load_calibration


# Tables that may be empty in a base year: 2024 has no projects still to come online.
MAY_BE_EMPTY = ("projects.csv",)


@pytest.mark.parametrize(
    "path", sorted(DATA_DIR.rglob("*.csv")), ids=lambda p: p.relative_to(DATA_DIR).as_posix()
)
def test_every_row_cites_a_source(path):
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows or path.name in MAY_BE_EMPTY
    assert all(row["source"].strip() for row in rows)


def test_mine_capacity_matches_usgs_2024_world_production():
    calibration = load_calibration()
    world = sum(capacity for _, _, capacity in calibration.mines)
    assert world == pytest.approx(390_000, rel=0.01)  # USGS MCS 2025
    china = sum(c for nation, _, c in calibration.mines if nation == "CN")
    assert china == 270_000


def test_china_holds_91_percent_of_separation():
    refiners = load_calibration().refiners
    china = sum(c for n, c, _ in refiners if n == "CN")
    assert china / sum(c for _, c, _ in refiners) == pytest.approx(0.91, abs=0.005)  # IEA 2024


def test_baskets_are_shares_and_light_deposits_hold_little_heavy():
    calibration = load_calibration()
    assert (calibration.basket >= 0).all() and (calibration.basket.sum(axis=1) <= 1.0).all()
    dy = calibration.elements.index("Dy")
    light = [calibration.deposits.index(d) for d in ("bayan_obo", "mountain_pass", "mount_weld")]
    assert (calibration.basket[light, dy] < 0.01).all()
    assert calibration.basket_of("ionic_clay")[dy] > 0.05


def test_parameter_defaults_lie_in_their_ranges():
    for parameter in load_calibration().parameters:
        assert min(parameter.low, parameter.high) <= parameter.value <= max(parameter.low, parameter.high), parameter.name


def test_base_year_heavy_rare_earth_supply_matches_the_chinese_market_size():
    calibration = load_calibration()
    mined = np.zeros(len(calibration.elements))
    for _, deposit, capacity in calibration.mines:
        mined += capacity * calibration.basket_of(deposit)
    dy, tb = calibration.elements.index("Dy"), calibration.elements.index("Tb")
    assert 3_000 < mined[dy] < 5_000  # Argus: Dy oxide market in China about 3,500 t (2024)
    assert 500 < mined[tb] < 1_200  # Argus: Tb oxide about 650 t
