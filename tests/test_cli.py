"""The ``ree`` command run as a user runs it: a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import EXPERIMENTS, ROOT

REE = str(Path(sys.executable).parent / "ree")


def ree(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([REE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_run_writes_series_metrics_and_figures(tmp_path):
    out = tmp_path / "shock"
    done = ree("run", str(EXPERIMENTS / "quota_shock.toml"), "--seed", "4", "--out", str(out))
    assert done.returncode == 0, done.stderr
    series = pd.read_parquet(out / "series.parquet")
    assert list(series.columns) == ["step", "variable", "element", "region", "value"]
    assert {"price", "supply", "demand", "shortfall", "stockpile", "tension", "quota"} <= set(series["variable"])
    assert series["step"].max() == 240
    assert set(series.loc[series["variable"] == "price", "region"]) >= {"CN", "world"}
    assert set(series.loc[series["variable"] == "tension", "region"]) >= {"US-CN"}
    assert len(pd.read_csv(out / "series.csv")) == len(series)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 4 and metrics["scenario"] == "quota_shock"
    assert metrics["metrics"]["world_price_peak_ratio_Dy"] > 1.0
    for figure in ("prices.png", "supply_by_origin.png", "shortfall.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*.tmp"))


BAD_FILES = [
    ('[contracts]\nshare = 2.0\n', "contracts.share", "2.0"),
    ('[shock]\nexporter = "XX"\n', "shock.exporter", "'XX'"),
    ('name = "x"\nunknown = 1\n', "unknown", "<not shown>"),  # an unknown key's value is never echoed
    ('[market\n', "(syntax)", ""),
    ('[[events]]\nkind = "quota"\nnation = "CN"\nstart = -3\nmonths = 1\n', "events[0].start", "-3"),
]


@pytest.mark.parametrize("text,key,value", BAD_FILES)
def test_bad_scenario_exits_2_with_one_line_and_writes_nothing(tmp_path, text, key, value):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    out = tmp_path / "out"
    done = ree("run", str(bad), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(bad) in lines[0] and key in lines[0] and value in lines[0] and "expected" in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_missing_file_is_bad_input_too(tmp_path):
    done = ree("run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_check_validates_without_running():
    done = ree("check", str(EXPERIMENTS / "quota_shock.toml"))
    assert done.returncode == 0 and "ok" in done.stdout
