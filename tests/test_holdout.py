"""``ree validate --holdout 2025``: the licensing scenario over a calibrated ensemble, as
a prediction. A tiny ensemble (two members) on a shortened horizon, one replication per
member; the plotted series are checked against a direct run of a member."""

import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from abm.batch.report import format_number
from abm.cli import main
from abm.model import WORLD
from abm.run import run_model
from abm.scenario import ScenarioError, load_scenario
from abm.validation import commands
from abm.validation.ensemble import load_ensemble, write_ensemble
from abm.validation.holdout import scenario_licences
from abm.validation.replay import VALIDATION_SEED, replication_seeds
from tests.conftest import EXPERIMENTS
from tests.test_cli import ree

LICENSING = EXPERIMENTS / "licensing_2025.toml"
FIGURES = ("prices_dy_tb", "exports", "shortfall", "prices_nd_pr")
# Two members, each setting inside its range in abm/data/parameters.csv.
SETTINGS = pd.DataFrame({"market.holdback": [0.8, 2.5], "market.hoarding_response": [0.3, 1.6]})


@pytest.fixture
def ensemble(tmp_path):
    folder = tmp_path / "calibrated"
    write_ensemble(SETTINGS, list(SETTINGS.columns), EXPERIMENTS / "crisis_2010.toml", folder, 2, "tests")
    return folder


def test_licences_of_the_2025_scenario():
    licences = scenario_licences(load_scenario(LICENSING), "licensing_2025.toml")
    assert licences.nation == "CN"
    assert licences.windows == ((3, 36),)  # April 2025 to the horizon, the two licences merged
    assert licences.elements == ("Sm", "Gd", "Tb", "Dy", "Y")
    assert {"Dy_oxide", "Tb_metal", "DyFe_alloy", "magnet_GBD"} <= set(licences.products)
    assert "magnet_N" not in licences.products and "Nd_oxide" not in licences.products
    with pytest.raises(ScenarioError, match="licence event"):
        scenario_licences(load_scenario(EXPERIMENTS / "baseline.toml"), "baseline.toml")


def _member_rows(table: pd.DataFrame, figure: str, row: str, column: str, member: str) -> pd.DataFrame:
    rows = table[(table["figure"] == figure) & (table["row"] == row) & (table["column"] == column)]
    return rows[rows["member"] == member].sort_values("month")


@pytest.mark.slow
def test_holdout_writes_the_prediction_of_the_runs(tmp_path, ensemble, monkeypatch):
    short = tmp_path / "licensing_short.toml"
    short.write_text(f'extends = "{LICENSING.as_posix()}"\nhorizon_months = 8\n')
    monkeypatch.setattr(commands, "HOLDOUTS", {2025: short})
    out = tmp_path / "out"
    argv = ["validate", "--holdout", "2025", "--ensemble", str(ensemble), "--out", str(out), "--replications", "1",
            "--executor", "serial", "--quiet"]
    monkeypatch.setattr(sys, "argv", ["ree", *argv])
    assert main(argv) == 0

    figures = [out / f"holdout_2025_{name}.png" for name in FIGURES]
    for path in figures:
        assert Image.open(path).info["dpi"] == pytest.approx((200, 200), abs=0.5)
    table = pd.read_csv(out / "holdout_2025_series.csv")
    text = (out / "holdout_2025.md").read_text()

    # The plotted series of member_1 are a direct run of its settings with the first seed.
    members = load_ensemble(ensemble)
    seed = replication_seeds(1, VALIDATION_SEED)[0]
    model = run_model(load_scenario(short).with_settings(members[0].settings), seed)
    recorded = model.datacollector.model_vars
    dy, world, cn = model.elements.index("Dy"), model.price_zones.index(WORLD), model.price_zones.index("CN")
    price = np.asarray(recorded["price"])[1:]
    flow = np.asarray(recorded["product_flow"])[1:]
    china, eu = model.regions.index("CN"), model.regions.index("EU")
    abroad = [r for r in range(len(model.regions)) if r != china]
    dyfe = model.products.index("DyFe_alloy")
    magnets = [p for p, stage in enumerate(model.product_stage) if stage == "magnet"]
    expected = {
        ("prices_dy_tb", "Dy", "outside CN (world market)"): price[:, dy, world],
        ("prices_dy_tb", "Dy", "ratio outside / inside CN"): price[:, dy, world] / price[:, dy, cn],
        ("prices_nd_pr", "Pr", "inside CN"): price[:, model.elements.index("Pr"), cn],
        # the metal stage's only covered product carrying Dy is DyFe alloy
        ("exports", "Dy", "metal"): flow[:, dyfe, china, abroad].sum(axis=1) * model.chain.content[dyfe, dy],
        ("shortfall", "magnet users", "EU"): np.asarray(recorded["product_shortfall"])[1:, magnets, eu].sum(axis=1),
    }
    for (figure, row, column), values in expected.items():
        plotted = _member_rows(table, figure, row, column, "member_1")
        assert len(plotted) == 8 and plotted["date"].iloc[0] == "2025-01"
        np.testing.assert_allclose(plotted["median"], values, rtol=1e-9, atol=1e-12)
        # two runs in all: the pooled median is their mean, the band lies between them
        both = np.stack([values, _member_rows(table, figure, row, column, "member_2")["median"]])
        pooled = _member_rows(table, figure, row, column, "all")
        np.testing.assert_allclose(pooled["median"], both.mean(axis=0), rtol=1e-9, atol=1e-12)
        assert (pooled["low"] >= both.min(axis=0) - 1e-9).all() and (pooled["high"] <= both.max(axis=0) + 1e-9).all()
    assert set(table["figure"]) == set(FIGURES)

    assert "**This is a prediction.**" in text and "No observed outcome of 2025 is compared" in text
    assert "ree validate --holdout 2025" in text and "member_2" in text and "`market.holdback`" in text
    # headline columns: quantity, unit, median, 5 %, 95 %, then each member's median
    line = next(row for row in text.splitlines() if row.startswith("| peak Dy price ratio outside / inside CN |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[5] == format_number((price[:, dy, world] / price[:, dy, cn]).max())
    line = next(row for row in text.splitlines() if row.startswith("| magnet shortfall in EU, all months |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[5] == format_number(expected[("shortfall", "magnet users", "EU")].sum())
    for path in figures:
        assert f"]({path.name})" in text


def _one_line_refusal(done, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0]


def test_a_missing_ensemble_is_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    for folder in (tmp_path / "nowhere", tmp_path):  # absent, and a folder with no member files
        done = ree("validate", "--holdout", "2025", "--ensemble", str(folder), "--out", str(out), "--quiet")
        _one_line_refusal(done, "--ensemble", "ree calibrate", str(folder))
    assert not out.exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["--holdout", "2024"], ["--holdout", "2025"]),
        (["--holdout", "2010"], ["--holdout", "2025"]),
        (["--holdout", "2025", "experiments/crisis_2010.toml"], ["--holdout", "licensing_2025.toml"]),
        (["--ensemble", "experiments"], ["--ensemble", "ree calibrate"]),  # a folder without members
    ],
)
def test_bad_holdout_flags_are_refused(tmp_path, args, words):
    out = tmp_path / "out"
    done = ree("validate", *args, "--out", str(out), "--quiet")
    _one_line_refusal(done, *words)
    assert not out.exists()
