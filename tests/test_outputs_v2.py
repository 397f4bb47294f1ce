"""Version 2 outputs: product series, import dependency by stage, the supply chain
metrics and their section of the batch report (issue 10)."""

import json

import numpy as np
import pandas as pd
import pytest

from abm.batch import experiment_from_dict, run_batch
from abm.batch.report import SUPPLY_CHAIN_OUTCOMES, write_report
from abm.metrics import METRICS, STAGES, metric_label, metric_names, parse_metric
from abm.run import (
    IMPORT_DEPENDENCY_COLUMNS, PRODUCT_SERIES_COLUMNS, UNTRACED, import_dependency, run_metrics, run_scenario,
)
from abm.scenario import load_scenario
from tests.conftest import EXPERIMENTS, finished_model
from tests.test_cli import ree

# A short run with a deep quota cut: end users outside China go short of magnets and oxides.
SHORT = {"horizon_months": 18, "shock_start": 2, "quota_cut": 0.9}
NEW_METRICS = [
    *(f"{metric}_{stage}" for stage in ("oxide", "metal", "magnet")
      for metric in ("supply_made_in_exporter_fraction", "new_capacity_outside_exporter_tproductpy")),
    "magnet_user_shortfall_outside_exporter_tproduct", "other_end_use_shortfall_outside_exporter_tproduct",
]


@pytest.fixture(scope="module")
def short_model():
    return finished_model(rng=2, scenario=EXPERIMENTS / "quota_shock.toml", **SHORT)


def hand_received_by_origin(model) -> dict[tuple[str, str], dict[str, float]]:
    """t each region's buyers received of each stage over months 1.., by origin, computed
    one month, product and region at a time from the model's records: apparent
    consumption (production + imports - exports, at least 0) times the recorded origin
    shares, the rest of it untraced; nothing in a month with no origin share and no import."""
    recorded = model.datacollector.model_vars
    got: dict[tuple[str, str], dict[str, float]] = {}
    for step in range(1, len(recorded["production"])):
        received_all = recorded["product_received"][step]
        flow, origin = recorded["product_flow"][step], recorded["product_origin"][step]
        for p, stage in enumerate(model.product_stage):
            for r, region in enumerate(model.regions):
                imports = flow[p, :, r].sum()
                if origin[p, r].sum() == 0 and imports == 0:
                    continue
                received = received_all[p, r]
                cell = got.setdefault((region, stage), {})
                for o, maker in enumerate(model.regions):
                    cell[maker] = cell.get(maker, 0.0) + received * origin[p, r, o]
                cell[UNTRACED] = cell.get(UNTRACED, 0.0) + received * max(1.0 - origin[p, r].sum(), 0.0)
    return {key: cell for key, cell in got.items() if sum(cell.values()) > 0}


def test_import_dependency_adds_up_to_one_and_is_the_hand_computation(short_model):
    table = import_dependency(short_model)
    assert list(table.columns) == IMPORT_DEPENDENCY_COLUMNS
    assert (table["share"] > 0).all() and (table["received_t"] > 0).all()
    sums = table.groupby(["region", "stage"])["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=0, atol=1e-12)
    hand = hand_received_by_origin(short_model)
    assert set(sums.index) == set(hand)  # every region and stage that received anything, and only those
    for (region, stage), cell in hand.items():
        rows = table[(table["region"] == region) & (table["stage"] == stage)].set_index("origin")
        total = sum(cell.values())
        for origin, tonnes in cell.items():
            if tonnes > 1e-9 * total:
                assert rows.loc[origin, "received_t"] == pytest.approx(tonnes, rel=1e-9)
                assert rows.loc[origin, "share"] == pytest.approx(tonnes / total, rel=1e-9, abs=1e-12)
            else:
                assert origin not in rows.index
    # the policy analyst's reading: EU buyers got magnets, mostly made in China
    eu_magnets = table[(table["region"] == "EU") & (table["stage"] == "magnet")].set_index("origin")["share"]
    assert eu_magnets.idxmax() == "CN"


def test_run_metrics_report_the_share_made_in_the_exporter_and_the_shortfall_by_end_use(short_model):
    metrics = run_metrics(short_model)
    assert list(metrics) == metric_names(short_model.elements, short_model.programmes.names)
    assert set(NEW_METRICS) <= set(metrics)
    exporter = short_model.spec.shock.exporter
    outside = [r for r in short_model.importing_regions if r != exporter]
    table = import_dependency(short_model)
    for stage in STAGES:
        rows = table[table["region"].isin(outside) & (table["stage"] == stage)]
        share = rows.loc[rows["origin"] == exporter, "received_t"].sum() / rows["received_t"].sum()
        assert metrics[f"supply_made_in_exporter_fraction_{stage}"] == pytest.approx(share, rel=1e-9)
        assert 0.0 <= share <= 1.0
    # the split by end use: magnet users need only magnets, the other end uses only oxides
    users, stage = short_model.end_users, np.array(short_model.product_stage)
    magnet_user = np.isin(np.array(users.sector), short_model.chain.data.end_uses)
    assert (users.need[magnet_user][:, stage != "magnet"] == 0).all()
    assert (users.need[~magnet_user][:, stage != "oxide"] == 0).all()
    shortfall = np.asarray(short_model.datacollector.model_vars["product_shortfall"])[1:]  # [T, P, R]
    regions = [short_model.regions.index(r) for r in outside]
    magnets = shortfall[:, stage == "magnet"][:, :, regions].sum()
    oxides = shortfall[:, stage == "oxide"][:, :, regions].sum()
    assert magnets > 0 and oxides > 0  # the cut is deep enough for both
    assert metrics["magnet_user_shortfall_outside_exporter_tproduct"] == pytest.approx(magnets, rel=1e-12)
    assert metrics["other_end_use_shortfall_outside_exporter_tproduct"] == pytest.approx(oxides, rel=1e-12)


def test_the_new_metrics_follow_the_catalogue_grammar():
    for name in NEW_METRICS:
        metric, suffix = parse_metric(name)
        assert metric.base in METRICS and name == metric.name(suffix)
        assert suffix in ("", *STAGES) and (suffix == "") == (metric.per == "")
    assert metric_label("supply_made_in_exporter_fraction_magnet") == "supply made in exporter magnet (fraction)"
    assert parse_metric("magnet_user_shortfall_outside_exporter_tproduct")[0].unit == "tproduct"
    assert list(SUPPLY_CHAIN_OUTCOMES) == NEW_METRICS


@pytest.mark.slow
def test_ree_run_writes_the_product_series_and_the_import_dependency(tmp_path):
    scenario = tmp_path / "short.toml"
    scenario.write_text(
        f'extends = "{(EXPERIMENTS / "quota_shock.toml").as_posix()}"\nname = "short"\nhorizon_months = 18\n'
        "[shock]\nstart = 2\nquota_cut = 0.9\n"
    )
    out = tmp_path / "out"
    done = ree("run", str(scenario), "--seed", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert {str(out / name) for name in ("product_series.parquet", "import_dependency.csv")} <= set(done.stdout.split())
    products = pd.read_parquet(out / "product_series.parquet")
    assert list(products.columns) == PRODUCT_SERIES_COLUMNS
    assert set(products["variable"]) == {"price", "production", "received", "shortfall", "unserved", "flow",
                                         "origin_share"}
    assert set(products["stage"]) == {"concentrate", "oxide", "metal", "magnet"} and products["step"].max() == 18
    written = pd.read_csv(out / "import_dependency.csv")
    same = run_scenario(load_scenario(scenario), seed=3, products=True)
    pd.testing.assert_frame_equal(written, same.import_dependency, check_exact=False, rtol=1e-12)
    np.testing.assert_allclose(written.groupby(["region", "stage"])["share"].sum(), 1.0, atol=1e-12)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert set(NEW_METRICS) <= set(metrics)
    assert not list(out.glob(".*.tmp"))
    helped = ree("run", "--help")
    assert "product_series.parquet" in helped.stdout and "import_dependency.csv" in helped.stdout


@pytest.mark.slow
def test_the_batch_report_shows_the_supply_chain_metrics_per_policy_with_intervals(tmp_path):
    table = {"name": "chain", "replications": 3, "seed": 5, "series": ["price"],
             "factors": {"quota_cut": [0.9], "horizon_months": [18], "shock_start": [2]},
             "policies": {"stockpile": {"stockpile_months": 2.0}}}
    experiment = experiment_from_dict(table, scenario=load_scenario(EXPERIMENTS / "quota_shock.toml"))
    store = run_batch(experiment, tmp_path / "store", executor="serial", progress=False)
    written = write_report(store.folder, experiment)
    metrics = pd.read_parquet(store.folder / "metrics.parquet")
    assert set(NEW_METRICS) <= set(metrics.columns)
    supply = pd.read_csv(store.folder / "supply_chain.csv")
    assert store.folder / "supply_chain.csv" in written
    assert sorted(supply["policy"]) == ["none", "stockpile"] and (supply["runs"] == 3).all()
    for policy, group in metrics.groupby("policy"):
        row = supply[supply["policy"] == policy].iloc[0]
        for name in NEW_METRICS:
            assert row[f"{name}_mean"] == pytest.approx(group[name].mean())
            assert row[f"{name}_low"] - 1e-9 <= row[f"{name}_mean"] <= row[f"{name}_high"] + 1e-9
            assert group[name].min() - 1e-9 <= row[f"{name}_low"] and row[f"{name}_high"] <= group[name].max() + 1e-9
    report = (store.folder / "report.md").read_text()
    section = report.split("## Supply chain")[1].split("\n## ")[0]
    for name in NEW_METRICS:
        assert metric_label(name) in section
    assert "95 % bootstrap interval" in section and "| stockpile |" in section
    # a store from before these metrics: the report leaves the section out
    metrics.drop(columns=NEW_METRICS).to_parquet(store.folder / "metrics.parquet", index=False)
    (store.folder / "supply_chain.csv").unlink()
    assert store.folder / "supply_chain.csv" not in write_report(store.folder, experiment)
    assert "## Supply chain" not in (store.folder / "report.md").read_text()
