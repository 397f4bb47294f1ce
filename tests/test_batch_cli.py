"""``ree batch`` and ``ree report`` as a user runs them: bad input. How a batch stops
(killed, interrupted, a worker dying) and resumes is in test_batch_stops.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXPERIMENTS, ROOT

REE = str(Path(sys.executable).parent / "ree")
EXPERIMENT = """
name = "killable"
scenario = "{scenario}"
replications = 4
seed = 11
record_every = 6
series = ["price"]
[factors]
quota_cut = [0.0, 0.3, 0.6]
horizon_months = [60]
[policies]
agreement = {{agreement = true}}
"""


def ree(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([REE, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture
def experiment_file(tmp_path) -> Path:
    path = tmp_path / "killable.toml"
    path.write_text(EXPERIMENT.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix()))
    return path


@pytest.mark.parametrize(
    "text,key",
    [
        ('name = "x"\nscenario = "{scenario}"\n[factors]\nwarp_speed = [1, 2]\n', "warp_speed"),
        ('name = "x"\nscenario = "{scenario}"\ndesign = "latin_hypercube"\nsamples = 4\n[factors]\nquota_cut = {{low = 0.5, high = 0.5}}\n', "factors.quota_cut"),
        ('name = "x"\nscenario = "{scenario}"\nreplications = 0\n', "replications"),
        ('name = "x"\nscenario = "{scenario}"\n[factors]\nquota_cut = []\n', "factors.quota_cut"),
        ('name = "x"\nscenario = "{scenario}"\n[policies]\nmagic = {{stockpile_months = -1.0}}\n', "stockpile.months"),
    ],
)
def test_bad_experiment_exits_2_with_one_line_and_writes_nothing(tmp_path, text, key):
    bad = tmp_path / "bad.toml"
    bad.write_text(text.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix()))
    out = tmp_path / "out"
    done = ree("batch", str(bad), "--out", str(out), "--executor", "serial", "--quiet")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and str(bad) in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()


def test_unreachable_scheduler_exits_2_and_writes_nothing(experiment_file, tmp_path):
    out = tmp_path / "out"
    done = ree("batch", str(experiment_file), "--out", str(out), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--quiet")
    assert done.returncode == 2 and "scheduler" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_report_of_a_folder_that_is_not_a_store_is_bad_input(tmp_path):
    done = ree("report", str(tmp_path))
    assert done.returncode == 2 and "ree batch" in done.stderr
