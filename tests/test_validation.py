"""``ree validate`` and ``ree calibrate``: observed targets, what they measure in a run,
and the commands end to end as a user runs them (a subprocess, on a reduced setting)."""

import csv
import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abm import load_scenario
from abm.batch.executors import SerialExecutor
from abm.data import DATA_DIR, load_calibration, month_index
from abm.validation.history import Target, load_observed_prices, load_targets
from abm.validation.replay import Replay, replay_many, replication_seeds
from abm.batch import load_experiment, plan_runs
from abm.batch.runner import run_task
from abm.validation.calibrate import calibration_batch, score_candidates
from abm.validation.ensemble import Member, load_ensemble, write_ensemble
from abm.validation.report import VALIDATION_COLUMNS, Provenance, SearchedRange, _members_check, ensemble_table
from abm.validation.scoring import TargetResult, evaluate_targets, joint_hold_share
from abm.validation.targets import simulated_value
from tests.conftest import EXPERIMENTS, ROOT
from tests.test_batch_stops import finished, wait_for_parts
from tests.test_batch_cli import REE
from tests.test_cli import ree

CRISIS = EXPERIMENTS / "crisis_2010.toml"


def _run(export: np.ndarray, domestic: np.ndarray, exports: np.ndarray, quota: np.ndarray) -> Replay:
    return Replay(
        seed=0, elements=("Nd", "La"), export_price=export, domestic_price=domestic, exports=exports, quota=quota,
        basket_weight=np.array([3.0, 1.0]),
    )


def _target(kind: str, element: str, start: str, end: str, zone: str = "export", observed: float = 1.0,
            bound: str = "value", low: float | None = None, high: float | None = None) -> Target:
    low = observed if low is None else low
    high = observed if high is None else high
    return Target("t", kind, element, zone, start, end, observed, low, high, bound, "validation", "", "")


def test_each_kind_of_target_measures_what_it_says():
    """Paths that change every month, so a window shifted by one month, a swapped start
    and end or the wrong base row gives another number."""
    months = 48
    row = np.arange(months, dtype=float)
    nd = 10.0 + row  # row 0 (the base year) is 10, row m is 10 + m
    nd[30] = 200.0  # the peak, in July 2011 (month 30 from January 2009)
    la = 2.0 + 0.5 * row
    export = np.stack([nd, la], axis=1)
    domestic = np.stack([nd / 2, 1.0 + row], axis=1)
    exports = np.stack([row, 2 * row], axis=1)  # exports of month m are recorded at row m + 1
    quota = np.full((months, 2), np.nan)
    quota[25:37, 0] = 100.0  # a quota on Nd only, months 24-35 (rows 25-36)
    run = _run(export, domestic, exports, quota)
    assert simulated_value(_target("peak_months_after_start", "Nd", "2010-07", "2012-12"), run, 2009) == 12
    assert simulated_value(_target("peak_ratio", "Nd", "2010-01", "2012-12"), run, 2009) == 200.0 / 10.0
    assert simulated_value(_target("price_ratio", "Nd", "2011-12", "2012-12"), run, 2009) == (10 + 47) / (10 + 35)
    # the domestic zone: La inside China (1 + m) in March 2012 (month 38) over March 2011 (month 26)
    assert simulated_value(_target("price_ratio", "La", "2011-03", "2012-03", "domestic"), run, 2009) == 39.0 / 27.0
    # mean over April-June 2011 (months 27-29) over the base-year world price (row 0)
    assert simulated_value(_target("mean_ratio", "La", "2011-04", "2011-06"), run, 2009) == pytest.approx(
        np.mean(la[27:30]) / la[0])
    assert simulated_value(_target("mean_ratio", "La", "2011-04", "2011-06", "domestic"), run, 2009) == pytest.approx(
        np.mean(1.0 + row[27:30]) / la[0])
    # La export in October 2011 (month 33) over China's domestic La in September 2011 (month 32)
    assert simulated_value(_target("export_to_domestic", "La", "2011-09", "2011-10"), run, 2009) == 18.5 / 33.0
    # basket from December 2009 (month 11): the quarter Jul-Sep 2011 (months 30-32) holds the Nd peak
    index = (export / export[0]) @ np.array([3.0, 1.0]) / 4.0
    basket = simulated_value(_target("basket_peak_ratio", "all", "2009-12", "2012-12"), run, 2009)
    assert basket == pytest.approx(index[30:33].mean() / index[11])
    # quota fill over 2011: Nd exports of rows 25-36 over Nd's quota; La (no quota) does not count
    fill = simulated_value(_target("quota_fill", "all", "2011-01", "2011-12"), run, 2009)
    assert fill == pytest.approx(np.arange(25, 37).sum() / 1200.0)
    with pytest.raises(ValueError, match="no quota"):
        simulated_value(_target("quota_fill", "all", "2012-01", "2012-12"), run, 2009)


def test_observed_targets_agree_with_the_observed_prices():
    """A fall, level or peak target is the ratio of price points in observed_prices.csv
    (or of one over the base-year reference price): the two tables cannot drift apart."""
    points = {(p.date, p.element, p.zone): p for p in load_observed_prices()}
    reference = {e: p for e, p in zip(load_calibration(2009).elements, load_calibration(2009).reference_price, strict=True)}
    checked = 0
    for target in load_targets():
        if target.kind == "price_ratio":
            end, start = points[(target.end, target.element, target.zone)], points[(target.start, target.element, target.zone)]
            assert target.observed == pytest.approx(end.price / start.price, abs=0.002), target.name
            assert target.low == pytest.approx((end.low or end.price) / (start.high or start.price), rel=1e-3), target.name
            assert target.high == pytest.approx((end.high or end.price) / (start.low or start.price), rel=1e-3), target.name
            checked += 1
        elif target.kind == "mean_ratio":  # a period's average, dated inside its window
            inside = [p.price for (date, element, zone), p in points.items()
                      if element == target.element and zone == target.zone and target.start <= date <= target.end]
            ratios = np.array(inside) / reference[target.element]
            assert np.isclose(ratios, target.observed, rtol=1e-3).any(), target.name
            checked += 1
        elif target.kind == "export_to_domestic":
            ratio = points[(target.end, target.element, "export")].price / points[(target.start, target.element, "domestic")].price
            assert target.observed == pytest.approx(ratio, abs=0.05), target.name
            checked += 1
        elif target.kind == "peak_ratio":
            start, end = month_index(target.start, 2009), month_index(target.end, 2009)
            highest = max(
                p.price for (date, element, zone), p in points.items()
                if element == target.element and zone == "export" and start <= month_index(date, 2009) <= end
            )
            assert target.observed == pytest.approx(highest / points[("2008-07", target.element, "export")].price, abs=0.05)
            checked += 1
    assert checked >= 54
    with (DATA_DIR / "history" / "targets.csv").open() as handle:
        assert all(row["source"].strip() for row in csv.DictReader(handle))


@pytest.mark.parametrize("overshoot, holds", [(2.5, False), (1.2, True), (0.4, False)])
@pytest.mark.parametrize("bound", ["lower", "value"])
def test_a_peak_overshooting_the_observed_more_than_twice_fails(overshoot, holds, bound):
    """Two-sided targets: a simulated peak at 2.5x the observed fails, at 1.2x it holds,
    whether the observation is a value or only a lower bound of the truth."""
    target = _target("peak_ratio", "Nd", "2010-01", "2012-12", observed=8.4, bound=bound)
    result = TargetResult(target, overshoot * 8.4 * np.linspace(0.7, 1.3, 21))  # a band of +-30 %
    assert result.within is holds
    # the loss is zero only inside the observed range: above a lower bound, up to twice it
    assert (result.error == 0.0) is (holds and bound == "lower")
    # a timing miss is judged in months
    timing = _target("peak_months_after_start", "Nd", "2010-07", "2012-12", observed=11.5, low=11, high=12)
    assert TargetResult(timing, np.array([10.0, 12.0, 13.0])).within
    assert not TargetResult(timing, np.array([6.0, 7.0, 8.0])).within


def test_scores_are_proper_and_the_group_share_counts_runs_where_all_hold():
    target = _target("price_ratio", "Nd", "2011-12", "2012-12", observed=0.4)
    sharp = TargetResult(target, np.array([0.39, 0.4, 0.41]))
    wide = TargetResult(target, np.array([0.1, 0.4, 1.6]))
    wrong = TargetResult(target, np.array([1.5, 1.6, 1.7]))
    assert sharp.interval_score < wide.interval_score < wrong.interval_score
    assert sharp.crps < wide.crps and sharp.crps < wrong.crps
    # one run misses in each target, never the same run: no run has both
    first = TargetResult(target, np.array([0.4, 0.4, 5.0]))
    second = TargetResult(target, np.array([5.0, 0.4, 0.4]))
    assert joint_hold_share([first, second]) == pytest.approx(1 / 3)


def test_the_validation_half_uses_no_target_the_calibration_saw():
    """Asserted from the target file: calibration targets are observed by June 2011,
    validation targets after it; calibration runs stop in June 2011 and measure only
    the calibration half."""
    calibration, validation = load_targets("calibration"), load_targets("validation")
    assert calibration and validation
    assert {t.name for t in calibration}.isdisjoint({t.name for t in validation})
    assert all(t.end <= "2011-06" for t in calibration)
    assert all(t.end >= "2011-07" for t in validation)
    assert set(load_targets()) == set(calibration) | set(validation)
    with (DATA_DIR / "history" / "targets.csv").open() as handle:
        halves = {row["target"]: row["half"] for row in csv.DictReader(handle)}
    assert {n for n, h in halves.items() if h == "calibration"} == {t.name for t in calibration}
    batch = calibration_batch(load_experiment(EXPERIMENTS / "crisis_2010_calibration.toml"))
    assert batch.scenario.horizon_months == month_index("2011-06", 2009) + 1
    assert batch.targets == "calibration" and batch.shared_seeds
    assert len({t.seed for t in plan_runs(batch) if t.replication == 0}) == 1  # every candidate, the same seeds


def _ensemble(folder, count: int = 2):
    table = pd.DataFrame({"market.holdback": [1.0, 2.5][:count], "market.hoarding_response": [0.5, 1.5][:count]})
    return write_ensemble(table, list(table.columns), CRISIS, folder, count, "a test table")


def test_validation_numbers_come_from_the_runs_and_the_member_files_reproduce_them(tmp_path):
    """The CLI's tables equal what the member files give when replayed here with the
    same seeds (pooled, and member by member); another seed gives other numbers."""
    out, ensemble = tmp_path / "validation", tmp_path / "calibrated"
    paths = _ensemble(ensemble)
    out.mkdir()
    pd.DataFrame({"market.holdback": [1.0, 2.5], "market.hoarding_response": [0.5, 1.5]}).to_csv(out / "calibration.csv")
    done = ree("validate", "--ensemble", str(ensemble), "--replications", "2", "--out", str(out), "--workers", "2")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "validation.csv")
    assert list(table.columns) == VALIDATION_COLUMNS
    assert {"peak_timing_Nd", "peak_ratio_Dy", "quota_fill_2011_2012", "level_2011q2_La"} <= set(table["target"])
    runs = {path.stem: replay_many(load_scenario(path), replication_seeds(2), SerialExecutor()) for path in paths}
    pooled = evaluate_targets(load_targets(), [run for path in paths for run in runs[path.stem]], 2009)
    assert table["simulated_median"].to_numpy() == pytest.approx([r.median for r in pooled])
    assert table["within"].tolist() == [r.within for r in pooled]
    assert table["crps"].to_numpy() == pytest.approx([r.crps for r in pooled])
    members = pd.read_csv(out / "members.csv")
    for path in paths:
        alone = evaluate_targets(load_targets(), runs[path.stem], 2009)
        rows = members[members["member"] == path.stem]
        assert rows["simulated_median"].to_numpy() == pytest.approx([r.median for r in alone])
        assert rows["interval_score"].to_numpy() == pytest.approx([r.interval_score for r in alone])
    other = replay_many(load_scenario(paths[0]), replication_seeds(2, seed=1), SerialExecutor())
    assert [r.median for r in evaluate_targets(load_targets(), other, 2009)] != [
        r.median for r in evaluate_targets(load_targets(), runs[paths[0].stem], 2009)]
    text = (out / "validation.md").read_text()
    for half in ("calibration", "validation"):
        rows = table[table["half"] == half]
        assert f"{half} half: {int(rows['within'].sum())} of {len(rows)} targets hold" in text
    assert "Members that differ from their row of `calibration.csv`: member_2" not in text
    assert "Every member's settings equal its row of `calibration.csv`" in text
    for element in load_calibration(2009).elements:
        assert (out / f"prices_{element}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"prices_{element}.png" in text
    assert not list(out.glob(".*.tmp"))


def test_the_report_flags_a_member_off_its_calibration_row_and_a_setting_on_a_bound(tmp_path):
    members = load_ensemble(tmp_path / "calibrated") if _ensemble(tmp_path / "calibrated") else ()
    table = tmp_path / "calibration.csv"
    pd.DataFrame({"market.holdback": [1.0, 2.4], "market.hoarding_response": [0.5, 1.5]}).to_csv(table)
    searched = (SearchedRange("market.holdback", 0.5, 3.0, "x"), SearchedRange("market.hoarding_response", 0.0, 2.0, "x"))
    provenance = Provenance("ree validate", "calibrated", searched, table)
    assert "member_2" in _members_check(list(members), provenance)
    shown = ensemble_table([*members, Member("edge", Path("edge.toml"), {
        "market.holdback": 2.99, "market.hoarding_response": 1.0})], provenance)
    assert shown["market.holdback"].tolist() == ["1.00", "2.50", "2.99 (bound)"]


@pytest.mark.parametrize(
    "args, key",
    [
        (["validate", "--replications", "0"], "replications"),
        (["validate", "--ensemble", "MISSING"], "ensemble"),
        (["validate", str(EXPERIMENTS / "baseline.toml")], "start_year"),
        (["validate", "LATE"], "start_year"),  # 2024's world from 2024: the targets lie before it
        (["validate", "SHORT"], "horizon_months"),
    ],
)
def test_validate_refuses_bad_input_and_writes_nothing(tmp_path, args, key):
    out = tmp_path / "out"
    files = {
        "LATE": 'name = "late"\nbase_year = 2024\nstart_year = 2024\n',
        "SHORT": f'extends = "{CRISIS}"\nhorizon_months = 40\n',
    }
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text)
    args = [str(tmp_path / f"{a}.toml") if a in files else str(tmp_path / a) if a == "MISSING" else a for a in args]
    done = ree(*args, "--out", str(out))
    assert done.returncode == 2
    assert key in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def _calibration_file(tmp_path, factor: str, low: float, high: float):
    path = tmp_path / "calibration.toml"
    path.write_text(
        f'name = "tiny"\nscenario = "{CRISIS}"\ndesign = "latin_hypercube"\nsamples = 3\nreplications = 2\nseed = 1\n'
        f'[factors]\n"{factor}" = {{low = {low}, high = {high}}}\n'
    )
    return path


@pytest.mark.parametrize(
    "factor, low, high, expected",
    [
        ("market.collection_rate", 0.0, 0.01, "marked [approx]"),  # sourced, not uncertain
        ("market.holdback", 0.5, 4.0, "within its documented range [0.5, 3]"),
    ],
)
def test_calibrate_searches_only_uncertain_parameters_within_their_ranges(tmp_path, factor, low, high, expected):
    out = tmp_path / "out"
    done = ree("calibrate", str(_calibration_file(tmp_path, factor, low, high)), "--out", str(out))
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_calibrate_ranks_candidates_writes_the_ensemble_and_resumes_from_its_store(tmp_path):
    out, ensemble = tmp_path / "out", tmp_path / "calibrated"
    experiment = _calibration_file(tmp_path, "market.holdback", 0.5, 3.0)
    args = ("calibrate", str(experiment), "--out", str(out), "--ensemble", str(ensemble), "--members", "2", "--quiet")
    done = ree(*args)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "calibration.csv")
    assert len(table) == 3 and table["loss"].is_monotonic_increasing and (table["failed_runs"] == 0).all()
    assert table["market.holdback"].between(0.5, 3.0).all()
    members = load_ensemble(ensemble)
    assert [m.name for m in members] == ["member_1", "member_2"]
    assert [m.settings["market.holdback"] for m in members] == table["market.holdback"].head(2).tolist()
    assert "best: market.holdback" in done.stdout
    store = json.loads((out / "calibration_runs" / "manifest.json").read_text())
    assert store["runs_this_session"] == 6
    again = ree(*args)  # nothing left to run: the same table from the same store
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "calibration_runs" / "manifest.json").read_text())["runs_this_session"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "calibration.csv"), table)
    refused = ree(*args, "--final-replications", "4")
    assert refused.returncode == 2 and "ree validate --replications" in refused.stderr


@pytest.mark.slow
def test_calibrate_killed_mid_batch_resumes_without_redoing_finished_runs(tmp_path):
    experiment = tmp_path / "calibration.toml"
    experiment.write_text(
        f'name = "kill"\nscenario = "{CRISIS}"\ndesign = "latin_hypercube"\nsamples = 6\nreplications = 4\nseed = 3\n'
        '[factors]\n"market.holdback" = {low = 0.5, high = 3.0}\n'
    )
    whole = tmp_path / "whole"
    assert ree("calibrate", str(experiment), "--out", str(whole), "--ensemble", str(tmp_path / "e1"),
               "--executor", "serial", "--quiet").returncode == 0
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [REE, "calibrate", str(experiment), "--out", str(out), "--ensemble", str(tmp_path / "e2"), "--executor",
         "serial", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    wait_for_parts(out / "calibration_runs", 3, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    saved = finished(out / "calibration_runs")
    assert 3 <= saved < 24, "the kill must land during the calibration"
    assert not (out / "calibration.csv").exists()
    resumed = ree("calibrate", str(experiment), "--out", str(out), "--ensemble", str(tmp_path / "e2"), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "calibration_runs" / "manifest.json").read_text())["runs_this_session"] == 24 - saved
    pd.testing.assert_frame_equal(pd.read_csv(out / "calibration.csv"), pd.read_csv(whole / "calibration.csv"))
    assert (tmp_path / "e1" / "member_1.toml").read_text().replace(str(whole), "") == (
        tmp_path / "e2" / "member_1.toml").read_text().replace(str(out), "")


def test_a_raising_run_is_a_failed_record_and_its_candidate_ranks_last():
    experiment = load_experiment(EXPERIMENTS / "crisis_2010_calibration.toml")
    batch = calibration_batch(experiment.with_replications(1))
    tasks = plan_runs(batch)[:2]
    records = [run_task(task)[0] for task in tasks[:1]]
    broken = dataclasses.replace(tasks[1], settings={**tasks[1].settings, "market.holdback": "not a number"})
    records.append(run_task(broken)[0])
    assert records[1]["status"] == "failed"
    table = score_candidates(batch, pd.DataFrame(records))
    assert table["failed_runs"].tolist() == [0, 1]
    assert np.isfinite(table["loss"].iloc[0]) and np.isinf(table["loss"].iloc[1])
