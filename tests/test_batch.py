"""The batch engine: planning, determinism across executors, failures, reports, EMA interop."""

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from abm import ScenarioError, evaluate
from abm.batch import load_experiment, plan_runs, run_batch
from abm.batch.report import write_report
from abm.batch import runner
from abm.batch.runner import run_task
from abm.batch.store import Store
from tests.conftest import EXPERIMENTS

SMALL = """
name = "small"
scenario = "{scenario}"
replications = 2
seed = 7
record_every = 2
series = ["price", "shortfall"]
[factors]
quota_cut = [0.0, 0.6]
horizon_months = [18]
shock_start = [2]
[policies]
stockpile = {{stockpile_months = 2.0}}
"""


@pytest.fixture
def small_experiment(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix()))
    return load_experiment(path)


def test_plan_has_stable_ids_and_seeds_shared_by_policies_not_by_replications(small_experiment):
    tasks = plan_runs(small_experiment)
    assert len(tasks) == 2 * 2 * 2 and len({t.run_id for t in tasks}) == 8
    assert [t.run_id for t in tasks] == [t.run_id for t in plan_runs(small_experiment)]
    by_pair = {}
    for task in tasks:
        by_pair.setdefault((task.point_id, task.replication), set()).add(task.seed)
    assert all(len(seeds) == 1 for seeds in by_pair.values())  # every policy meets the same numbers
    assert len({next(iter(s)) for s in by_pair.values()}) == 4  # replications and points differ
    more = plan_runs(small_experiment.with_replications(3))
    assert {t.run_id for t in tasks} <= {t.run_id for t in more}  # adding replications keeps old ids


def test_sampled_designs_have_the_sizes_salib_gives():
    morris = load_experiment(EXPERIMENTS / "sensitivity.toml")
    assert len({t.point_id for t in plan_runs(morris)}) <= morris.samples * (len(morris.factors) + 1)
    tasks = plan_runs(morris)
    elasticity = [t.point["market.short_run_elasticity"] for t in tasks]
    assert min(elasticity) >= -0.2 and max(elasticity) <= -0.1


def _metrics_without_timing(store: Store) -> pd.DataFrame:
    metrics = pd.read_parquet(store.folder / "metrics.parquet").drop(columns=["seconds"])
    return metrics.sort_values("run_id", ignore_index=True)


@pytest.mark.slow
def test_same_experiment_is_bit_identical_on_every_executor_and_worker_count(small_experiment, tmp_path):
    stores = {
        "serial": run_batch(small_experiment, tmp_path / "serial", executor="serial", progress=False),
        "processes-1": run_batch(small_experiment, tmp_path / "p1", executor="processes", workers=1, progress=False),
        "processes-2": run_batch(small_experiment, tmp_path / "p2", executor="processes", workers=2, progress=False),
        "dask-2": run_batch(small_experiment, tmp_path / "dask", executor="dask", workers=2, progress=False),
    }
    reference = _metrics_without_timing(stores["serial"])
    assert len(reference) == 8 and (reference["status"] == "ok").all()
    for name, store in stores.items():
        pd.testing.assert_frame_equal(_metrics_without_timing(store), reference, check_exact=True, obj=name)
        series = pd.read_parquet(store.folder / "series.parquet").sort_values(["run_id", "step", "variable", "element", "region"], ignore_index=True)
        if name == "serial":
            reference_series = series
        pd.testing.assert_frame_equal(series, reference_series, check_exact=True, obj=name)
    assert set(reference_series["step"]) == set(range(0, 19, 2))  # the recording period


def test_a_failing_run_becomes_a_failed_record_and_is_retried_later(small_experiment, tmp_path):
    task = plan_runs(small_experiment)[0]
    broken = dataclasses.replace(task, settings={"quota_cut": 3.0})
    record, series, agents = run_task(broken)
    assert record["status"] == "failed" and "quota_cut" in record["error"] and series is None and agents is None
    store = Store(tmp_path / "store")
    store.write_run(record, series)
    assert task.run_id not in store.finished()
    assert list(store.failures()["run_id"]) == [task.run_id]
    store.consolidate()
    table = pd.read_parquet(store.folder / "metrics.parquet")
    assert table["status"].tolist() == ["failed"] and "quota_cut" in table["error"].item()
    good, good_series, _ = run_task(task)
    store.write_run(good, good_series)
    assert task.run_id in store.finished() and store.failures().empty
    store.consolidate()
    assert pd.read_parquet(store.folder / "metrics.parquet")["status"].tolist() == ["ok"]


def test_rerun_skips_finished_runs_and_refuses_a_store_of_another_experiment(small_experiment, tmp_path):
    out = tmp_path / "store"
    run_batch(small_experiment, out, executor="serial", progress=False)
    first = _metrics_without_timing(Store(out))
    run_batch(small_experiment, out, executor="serial", progress=False, resume=True)
    assert json.loads((out / "manifest.json").read_text())["runs_this_session"] == 0
    pd.testing.assert_frame_equal(_metrics_without_timing(Store(out)), first)
    other = tmp_path / "other.toml"
    other.write_text(small_experiment.source.read_text().replace("seed = 7", "seed = 8"))
    with pytest.raises(ScenarioError, match="store"):
        run_batch(load_experiment(other), out, executor="serial", progress=False)
    with pytest.raises(ScenarioError, match="resume"):
        run_batch(small_experiment, tmp_path / "nothing", executor="serial", progress=False, resume=True)


def test_model_code_digest_follows_model_code_and_data_only(tmp_path):
    package = tmp_path / "abm"
    shutil.copytree(runner.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    original = runner.model_code_digest(package)
    assert original == runner.model_code_digest(runner.PACKAGE)
    for unrelated in ("cli.py", "figures.py", "viz/app.py", "validation/report.py", "data/history/targets.csv"):
        (package / unrelated).write_text((package / unrelated).read_text() + "\n# edited\n")
    assert runner.model_code_digest(package) == original
    for model_file in ("clearing.py", "data/__init__.py", "agents/converter.py", "data/base_2009/mines.csv"):
        edited = package / model_file
        kept = edited.read_text()
        edited.write_text(kept + "\n")
        assert runner.model_code_digest(package) != original, model_file
        edited.write_text(kept)


def test_a_store_made_by_other_model_code_is_refused(small_experiment, tmp_path, monkeypatch):
    out = tmp_path / "store"
    run_batch(small_experiment, out, executor="serial", progress=False)
    monkeypatch.setattr(runner, "model_code_digest", lambda: "edited model")
    with pytest.raises(ScenarioError, match="made by this model code"):
        run_batch(small_experiment, out, executor="serial", progress=False, resume=True)


def test_report_numbers_come_from_the_runs(small_experiment, tmp_path):
    out = tmp_path / "store"
    run_batch(small_experiment, out, executor="serial", progress=False)
    written = write_report(out, small_experiment)
    metrics = pd.read_parquet(out / "metrics.parquet")
    summary = pd.read_csv(out / "summary.csv")
    for (cut, policy), group in metrics.groupby(["factor.quota_cut", "policy"]):
        row = summary[(summary["factor.quota_cut"] == cut) & (summary["policy"] == policy)]
        assert row["shortfall_outside_exporter_t_mean"].item() == pytest.approx(group["shortfall_outside_exporter_t"].mean())
    gained = pd.read_csv(out / "resilience_gained.csv")
    assert sorted(gained["factor.quota_cut"]) == sorted(metrics["factor.quota_cut"].unique())  # one row per point
    assert set(gained["policy"]) == {"stockpile"}
    for name in ("report.md", "effects.csv", "figures/price_fan_none_1.png", "figures/price_fan_none_2.svg",
                 "figures/effects.png", "figures/effects.svg", "figures/cost_resilience.png"):
        assert (out / name).exists() and (out / name) in written
    assert "stockpile" in (out / "report.md").read_text()


def test_ema_workbench_drives_evaluate_and_reads_the_stored_results(small_experiment, tmp_path):
    ema = pytest.importorskip("ema_workbench")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ema.Model("ree", function=evaluate)
        model.uncertainties = [ema.RealParameter("quota_cut", 0.0, 0.8), ema.RealParameter("market.short_run_elasticity", -0.2, -0.1)]
        model.constants = [ema.Constant("horizon_months", 18), ema.Constant("shock_start", 2), ema.Constant("seed", 3)]
        model.outcomes = [ema.ScalarOutcome("shortfall_outside_exporter_t"), ema.ScalarOutcome("world_price_volatility_fraction_Dy")]
        experiments, outcomes = ema.perform_experiments(model, scenarios=4, uncertainty_sampling=ema.Samplers.LHS)
    assert len(experiments) == 4 and outcomes["world_price_volatility_fraction_Dy"].shape == (4,)
    assert np.all(np.isfinite(outcomes["shortfall_outside_exporter_t"]))
    direct = evaluate(seed=3, horizon_months=18, shock_start=2, quota_cut=float(experiments["quota_cut"][0]),
                      **{"market.short_run_elasticity": float(experiments["market.short_run_elasticity"][0])})
    assert direct["world_price_volatility_fraction_Dy"] == outcomes["world_price_volatility_fraction_Dy"][0]

    out = tmp_path / "store"
    run_batch(small_experiment, out, executor="serial", progress=False)
    write_report(out, small_experiment)
    stored_experiments, stored_outcomes = ema.load_results(str(out / "ema_results.tar.gz"))
    assert len(stored_experiments) == 8 and set(stored_experiments["policy"]) == {"none", "stockpile"}
    assert stored_outcomes["shortfall_outside_exporter_t"].shape == (8,)


def test_sampled_factors_are_rounded_only_when_the_setting_is_a_whole_number(tmp_path):
    path = tmp_path / "lhs.toml"
    path.write_text(
        f'name = "lhs"\nscenario = "{(EXPERIMENTS / "quota_shock.toml").as_posix()}"\ndesign = "latin_hypercube"\n'
        'samples = 8\n[factors]\nquota_cut = {low = 0, high = 1}\nshock_months = {low = 6, high = 36}\n'
    )
    points = [t.point for t in plan_runs(load_experiment(path))]
    assert len({p["quota_cut"] for p in points}) == 8 and not all(float(p["quota_cut"]).is_integer() for p in points)
    assert all(isinstance(p["shock_months"], int) and 6 <= p["shock_months"] <= 36 for p in points)


def test_an_experiment_from_a_table_is_validated_like_a_file_and_plans_the_same_runs(small_experiment):
    from abm.batch import experiment_from_dict

    table = {"name": "small", "replications": 2, "seed": 7, "record_every": 2, "series": ["price", "shortfall"],
             "factors": {"quota_cut": [0.0, 0.6], "horizon_months": [18], "shock_start": [2]},
             "policies": {"stockpile": {"stockpile_months": 2.0}}}
    built = experiment_from_dict(table, scenario=small_experiment.scenario)
    assert [t.run_id for t in plan_runs(built)] == [t.run_id for t in plan_runs(small_experiment)]
    assert runner.experiment_hash(built) == runner.experiment_hash(small_experiment)
    with pytest.raises(ScenarioError, match=r"factors\.quota_cut"):
        experiment_from_dict({**table, "factors": {"quota_cut": [float("inf")]}}, scenario=small_experiment.scenario)
    with pytest.raises(ScenarioError, match="warp"):
        experiment_from_dict({**table, "warp": 1}, scenario=small_experiment.scenario)


def test_an_experiment_that_records_agents_stores_every_agents_series(small_experiment, tmp_path):
    from abm.batch import experiment_from_dict

    table = {"name": "agents", "record_agents": True, "record_every": 6, "series": ["price"],
             "factors": {"quota_cut": [0.6], "horizon_months": [18], "shock_start": [2]}, "policies": {"stockpile": {"stockpile_months": 2.0}}}
    experiment = experiment_from_dict(table, scenario=small_experiment.scenario)
    store = run_batch(experiment, tmp_path / "agents", executor="serial", progress=False)
    agents = pd.read_parquet(store.folder / "agents.parquet")
    metrics = pd.read_parquet(store.folder / "metrics.parquet")
    assert set(agents["run_id"]) == set(metrics["run_id"]) and set(agents["step"]) == {0, 6, 12, 18}
    by_run = agents.groupby("run_id")["agent_type"].agg(set)
    stockpile_run = metrics.loc[metrics["policy"] == "stockpile", "run_id"].item()
    assert {"ExportingNation", "Converter", "EndUser", "Recycler"} <= by_run.iloc[0]
    assert "StrategicStockpile" in by_run[stockpile_run]
    # end users' shortfall in the agent table adds up to the recorded shortfall of every product
    series = tidy_series_of(small_experiment.scenario.with_settings({"quota_cut": 0.6, "horizon_months": 18, "shock_start": 2}),
                            int(metrics.loc[metrics["policy"] == "none", "seed"].item()))
    none_run = metrics.loc[metrics["policy"] == "none", "run_id"].item()
    mine = agents[(agents["run_id"] == none_run) & (agents["variable"] == "shortfall_t") & (agents["step"] == 12)]
    recorded = series[(series["variable"] == "shortfall") & (series["step"] == 12) & (series["partner"] == "all")]
    assert mine["value"].sum() == pytest.approx(recorded["value"].sum())
    plain = run_batch(small_experiment, tmp_path / "plain", executor="serial", progress=False)
    assert not (plain.folder / "agents.parquet").exists()  # only when asked


def tidy_series_of(scenario, seed):
    from abm.run import run_model, tidy_product_series

    return tidy_product_series(run_model(scenario, seed))


def test_report_numbers_are_written_for_people_never_in_scientific_notation():
    from abm.batch.report import format_number

    cases = {1.15e-07: "0", 4e8: "400,000,000", 2514.3: "2,514", 0.1644: "0.164", -0.77: "-0.770",
             12.34: "12.3", float("nan"): "n/a"}
    assert {value: format_number(value) for value in cases} == cases


@pytest.mark.parametrize("table,key", [
    ({"factors": {"shock_start": [2, 30], "horizon_months": [24, 36]}}, "design point"),  # start 30 and horizon 24 are fine alone
    ({"factors": {"quota_cut": [0.1]}, "policies": {"p": {"quota_cut": 0.9}}}, "policies.p"),
    ({"policies": {"p": {"secret_key": "SECRET"}}}, "secret_key"),
])
def test_an_experiment_refuses_clashing_combinations_and_never_echoes_unknown_values(small_experiment, table, key):
    from abm.batch import experiment_from_dict

    with pytest.raises(ScenarioError, match=key) as refused:
        experiment_from_dict({"name": "x", **table}, scenario=small_experiment.scenario.with_settings({"shock_start": 2}))
    assert "SECRET" not in str(refused.value)
