"""Forward experiments over the calibrated ensemble: every design point once per member,
with the member's market settings; the report's ranking of policies across members."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from abm import ScenarioError
from abm.batch import experiment_from_dict, load_experiment, plan_runs, run_batch
from abm.batch.experiment import ENSEMBLE_FACTOR, NO_POLICY
from abm.batch.plan import member_point
from abm.batch.report import ranking_stability, sensitivity_indices, stability_verdict, write_report
from abm.batch.runner import experiment_hash
from abm.validation.calibrate import check_within_ranges
from abm.validation.ensemble import write_ensemble
from tests.conftest import EXPERIMENTS
from tests.test_batch_cli import ree

# Two members, each setting within its documented range (abm/data/parameters.csv):
# holdback [0.5, 3], choke_ratio [1.5, 4].
MEMBERS = pd.DataFrame({"market.holdback": [0.6, 2.5], "market.choke_ratio": [1.6, 3.5]})
EXPERIMENT = """
name = "forward"
scenario = "{scenario}"
ensemble = "{ensemble}"
replications = 2
seed = 5
record_every = 6
series = ["price", "shortfall"]
[factors]
quota_cut = [0.3, 0.6]
horizon_months = [24]
shock_start = [2]
[policies]
stockpile = {{stockpile_months = 2.0}}
agreement = {{agreement = true}}
"""
POLICIES = 3  # none, stockpile, agreement


def _ensemble(folder, table=MEMBERS):
    write_ensemble(table, list(table.columns), EXPERIMENTS / "quota_shock.toml", folder, len(table), "a test table")
    return folder


@pytest.fixture
def experiment_file(tmp_path):
    _ensemble(tmp_path / "calibrated")
    path = tmp_path / "forward.toml"
    path.write_text(EXPERIMENT.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix(), ensemble="calibrated"))
    return path


def test_every_design_point_runs_once_per_member_and_policies_share_its_seeds(experiment_file):
    experiment = load_experiment(experiment_file)
    assert [m.name for m in experiment.ensemble] == ["member_1", "member_2"]
    tasks = plan_runs(experiment)
    assert len(tasks) == 2 * 2 * POLICIES * 2 == experiment.planned_runs()  # points x members x policies x reps
    assert len({t.run_id for t in tasks}) == len(tasks)
    seeds = pd.DataFrame([{**t.point, "policy": t.policy, "replication": t.replication, "seed": t.seed,
                           "point_id": t.point_id} for t in tasks])
    per_run = seeds.groupby([ENSEMBLE_FACTOR, "quota_cut", "replication"])
    assert (per_run["seed"].nunique() == 1).all() and (per_run["policy"].nunique() == POLICIES).all()
    per_row = seeds.groupby(["quota_cut", "replication"])  # the same design row and replication
    assert (per_row["seed"].nunique() == 2).all() and (per_row["point_id"].nunique() == 2).all()  # one per member


def test_each_run_sets_its_members_settings_then_the_factors_then_the_policy(experiment_file, tmp_path):
    experiment = load_experiment(experiment_file)
    members = {m.name: m.settings for m in experiment.ensemble}
    for task in plan_runs(experiment):
        assert ENSEMBLE_FACTOR not in task.settings  # recorded, never applied
        market = task.scenario.with_settings(task.settings).market
        member = members[task.point[ENSEMBLE_FACTOR]]
        assert (market.holdback, market.choke_ratio) == (member["market.holdback"], member["market.choke_ratio"])
    table = {"name": "override", "ensemble": "calibrated", "factors": {"market.holdback": [1.0]},
             "policies": {"tight": {"market.choke_ratio": 2.0}}}
    override = experiment_from_dict(table, scenario=experiment.scenario, source=tmp_path / "override.toml")
    for task in plan_runs(override):
        market = task.scenario.with_settings(task.settings).market
        member = members[task.point[ENSEMBLE_FACTOR]]
        assert market.holdback == 1.0  # a factor overrides the member
        assert market.choke_ratio == (2.0 if task.policy == "tight" else member["market.choke_ratio"])


def test_without_an_ensemble_the_plan_and_its_hash_are_unchanged(experiment_file, tmp_path):
    tasks = plan_runs(load_experiment(EXPERIMENTS / "quota_sweep.toml"))
    # Run ids and seeds of experiments/quota_sweep.toml as planned before ensembles existed.
    planned = hashlib.sha256(" ".join(f"{t.run_id}:{t.seed}" for t in tasks).encode()).hexdigest()
    assert planned == "7436c501b3b27a8085912a3e100b6c969b52e691fb2b6ee0d0944d1b23b04755"
    assert all(ENSEMBLE_FACTOR not in t.point for t in tasks)
    with_members = load_experiment(experiment_file)
    without = load_experiment(experiment_file, use_ensemble=False)  # ree batch --no-ensemble
    plain = tmp_path / "plain.toml"
    plain.write_text(experiment_file.read_text().replace('ensemble = "calibrated"\n', ""))
    assert without.ensemble == ()
    assert [t.run_id for t in plan_runs(without)] == [t.run_id for t in plan_runs(load_experiment(plain))]
    assert len(plan_runs(without)) == len(plan_runs(with_members)) // 2
    assert experiment_hash(without) == experiment_hash(load_experiment(plain)) != experiment_hash(with_members)
    other = _ensemble(tmp_path / "other", MEMBERS.assign(**{"market.holdback": [0.6, 2.4]}))
    recalibrated = experiment_from_dict(
        {"name": "forward", "ensemble": other.name}, scenario=with_members.scenario, source=experiment_file
    )
    mine = experiment_from_dict({"name": "forward", "ensemble": "calibrated"}, scenario=with_members.scenario,
                                source=experiment_file)
    assert experiment_hash(recalibrated) != experiment_hash(mine)  # a store of another ensemble is refused


def test_members_count_towards_the_run_limit(experiment_file):
    experiment = load_experiment(experiment_file)
    with pytest.raises(ScenarioError, match="2 ensemble members"):
        experiment.with_replications(150_000)  # 2 points x 3 policies x 150,000 = 900,000 runs, x 2 members
    without = load_experiment(experiment_file, use_ensemble=False)
    assert without.with_replications(150_000).planned_runs() == 900_000


def test_a_calibration_refuses_an_ensemble(experiment_file):
    experiment = load_experiment(experiment_file)
    table = {"name": "calibration", "ensemble": "calibrated", "design": "latin_hypercube", "samples": 2,
             "factors": {"market.holdback": {"low": 0.5, "high": 3.0}}}
    calibration = experiment_from_dict(table, scenario=experiment.scenario, source=experiment_file)
    with pytest.raises(ScenarioError, match="ensemble"):
        check_within_ranges(calibration)


def test_a_batch_over_the_ensemble_stores_each_member_and_reports_the_ranking_across_them(experiment_file, tmp_path):
    experiment = load_experiment(experiment_file)
    out = tmp_path / "store"
    run_batch(experiment, out, executor="serial", progress=False)
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert (metrics["status"] == "ok").all() and len(metrics) == 24
    assert sorted(metrics[f"factor.{ENSEMBLE_FACTOR}"].unique()) == ["member_1", "member_2"]
    by_member = metrics.pivot_table(index=["factor.quota_cut", "replication", "policy"],
                                    columns=f"factor.{ENSEMBLE_FACTOR}", values="world_price_peak_ratio_Dy")
    assert (by_member["member_1"] != by_member["member_2"]).all()  # the members' markets differ

    write_report(out, experiment)
    across = pd.read_csv(out / "ensemble_gained.csv")
    assert len(across) == 2 * 2 * (POLICIES - 1) and set(across["rank"]) <= {1, 2}  # members x points x policies
    for _, row in across.iterrows():  # within a member and a design point, never pooled across points
        runs = metrics[(metrics[f"factor.{ENSEMBLE_FACTOR}"] == row["member"])
                       & (metrics["factor.quota_cut"] == row["factor.quota_cut"])]
        foregone = runs.groupby("policy")["demand_foregone_outside_exporter_t"].mean()
        assert row["demand_foregone_outside_exporter_t_gain"] == pytest.approx(1 - foregone[row["policy"]] / foregone[NO_POLICY])
    report = (out / "report.md").read_text()
    section = report.split("## Across the calibrated ensemble", 1)[1].split("\n## ", 1)[0]
    assert "member_2" in section and "Kendall's tau" in section
    assert any(verdict in section for verdict in ("**Stable:**", "**Best policy stable, order not:**", "**Not stable:**"))
    assert "e-0" not in section and "e+0" not in section  # written for people
    assert "## Across the calibrated ensemble" not in _plain_report(experiment_file, tmp_path)


def _plain_report(experiment_file, tmp_path) -> str:
    """The report of a one-replication batch of the experiment without its ensemble."""
    out = tmp_path / "plain"
    experiment = load_experiment(experiment_file, use_ensemble=False).with_replications(1)
    run_batch(experiment, out, executor="serial", progress=False)
    write_report(out, experiment)
    return (out / "report.md").read_text()


@pytest.mark.parametrize("gains,verdict", [
    ({"member_1": [0.3, 0.2, 0.1], "member_2": [0.4, 0.3, 0.2]}, "**Stable:**"),
    ({"member_1": [0.3, 0.2, 0.1], "member_2": [0.4, 0.1, 0.2]}, "**Best policy stable, order not:**"),
    ({"member_1": [0.3, 0.2, 0.1], "member_2": [0.1, 0.2, 0.3]}, "**Not stable:**"),
])
def test_the_verdict_says_whether_members_rank_the_policies_alike(gains, verdict):
    pooled = {"a": 1, "b": 2, "c": 3}
    table = pd.DataFrame([
        {"member": member, "policy": policy, "pooled_rank": pooled[policy], "gain": gain}
        for member, values in gains.items() for policy, gain in zip(pooled, values, strict=True)
    ])
    table["rank"] = table.groupby("member")["gain"].rank(ascending=False).astype(int)
    stability = ranking_stability(table)
    assert stability_verdict(stability).startswith(verdict)
    assert stability["kendall_tau"].iloc[0] == 1.0
    if verdict == "**Not stable:**":
        assert list(stability["best_policy"]) == ["a", "c"] and stability["kendall_tau"].iloc[1] == -1.0


def test_sensitivity_indices_average_each_design_row_over_the_members(experiment_file):
    table = {"name": "screen", "ensemble": "calibrated", "design": "morris", "samples": 4, "seed": 3,
             "factors": {"quota_cut": {"low": 0.0, "high": 0.8}, "shock_months": {"low": 6, "high": 24}}}
    scenario = load_experiment(experiment_file).scenario
    members = experiment_from_dict(table, scenario=scenario, source=experiment_file)
    alone = experiment_from_dict(table, scenario=scenario, source=experiment_file, use_ensemble=False)
    offset = {"member_1": -1.0, "member_2": 1.0}  # averages out over the two members

    def metrics(experiment):
        rows = []
        for task in plan_runs(experiment):
            value = 10 * task.point["quota_cut"] + task.point["shock_months"] ** 2 / 100
            rows.append({"point_id": task.point_id, "policy": task.policy,
                         **{f"factor.{k}": v for k, v in task.point.items()},
                         **dict.fromkeys(("world_price_volatility_fraction_Dy", "shortfall_outside_exporter_t",
                                          "resilience_loss_months"),
                                         value + offset.get(task.point.get(ENSEMBLE_FACTOR), 0.0))})
        return pd.DataFrame(rows)

    assert member_point({"quota_cut": 0.1}, "member_1") == {ENSEMBLE_FACTOR: "member_1", "quota_cut": 0.1}
    indices = sensitivity_indices(metrics(members), members)
    pd.testing.assert_frame_equal(indices, sensitivity_indices(metrics(alone), alone))
    assert np.isfinite(indices["mu_star"]).all()


def test_check_counts_the_members_in_the_planned_runs(experiment_file):
    done = ree("check", str(experiment_file))
    assert done.returncode == 0 and "24 runs at most" in done.stdout  # 2 points x 2 members x 3 policies x 2


@pytest.mark.parametrize("ensemble,shown", [
    ('"missing"', "missing"),  # no such folder
    ('"empty"', "empty"),  # a folder without member files
    ("3", "3"),  # not a path
])
def test_a_bad_ensemble_exits_2_with_one_line_and_writes_nothing(tmp_path, ensemble, shown):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_text(EXPERIMENT.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix(), ensemble="X")
                   .replace('"X"', ensemble))
    out = tmp_path / "out"
    done = ree("batch", str(bad), "--out", str(out), "--executor", "serial", "--quiet")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert str(bad) in lines[0] and "ensemble = " in lines[0] and shown in lines[0]
    assert not out.exists()


def test_no_ensemble_runs_the_scenarios_own_parameters_even_without_the_folder(tmp_path):
    path = tmp_path / "pending.toml"  # names an ensemble not calibrated yet
    path.write_text(
        f'name = "pending"\nscenario = "{(EXPERIMENTS / "quota_shock.toml").as_posix()}"\nensemble = "calibrated"\n'
        'seed = 2\nrecord_every = 12\nseries = ["price"]\n[factors]\nhorizon_months = [24]\nshock_start = [2]\n'
    )
    out = tmp_path / "out"
    done = ree("batch", str(path), "--out", str(out), "--executor", "serial", "--quiet", "--no-report", "--no-ensemble")
    assert done.returncode == 0, done.stderr
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert len(metrics) == 1 and f"factor.{ENSEMBLE_FACTOR}" not in metrics.columns
    planned = plan_runs(load_experiment(path, use_ensemble=False))
    assert list(metrics["run_id"]) == [planned[0].run_id]
    assert planned[0].point == {"horizon_months": 24, "shock_start": 2}
