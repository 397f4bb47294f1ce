"""Every input checked: scenario files, experiment files and CLI flags.

The table-driven test runs ``ree`` as a user runs it (a subprocess, in a scratch folder
holding the case's files) and expects exit status 2, exactly one line on stderr naming the
file or flag and the key, no traceback, and nothing written. The in-process tests check
that every numeric field refuses non-finite values and that numpy scalars are accepted.
"""

import dataclasses
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from abm.batch import load_experiment
from abm.scenario import _SECTIONS, Event, Scenario, ScenarioError, load_scenario, scenario_from_dict
from tests.conftest import EXPERIMENTS

REE = str(Path(sys.executable).parent / "ree")
CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"

SHORT24 = 'name = "short24"\nstart_year = 2025\nhorizon_months = 24\n[shock]\nexporter = "CN"\nquota_cut = 0.4\nstart = 6\nmonths = 12\n'
NO_SHOCK = 'start_year = 2025\nhorizon_months = 60\n[shock]\nexporter = "CN"\nquota_cut = 0.0\n'
SWEEP = 'scenario = "short24.toml"\nreplications = 1\n[factors]\nquota_cut = [0.2, 0.4]\n'


def _event(**keys: object) -> str:
    return NO_SHOCK + "[[events]]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def _experiment(text: str) -> dict[str, str]:
    return {"short24.toml": SHORT24, "exp.toml": text}


# (id, files to write, ree arguments, what the line must name (file or flag), key, text that must not appear)
BAD = [
    # 7. names that would leave results/
    ("e12 name escapes results", {"s.toml": 'name = "../../escaped_outputs"\n' + NO_SHOCK}, ["run", "s.toml"], "s.toml", "name", None),
    ("absolute name", {"s.toml": 'name = "{tmp}/abs_out"\n' + NO_SHOCK}, ["run", "s.toml"], "s.toml", "name", None),
    ("experiment name ..", _experiment('name = ".."\n' + SWEEP), ["batch", "exp.toml"], "exp.toml", "name", None),
    # 8. non-finite and absurd values
    ("e11 domestic mining inf",
     {"s.toml": NO_SHOCK + '[domestic_mining]\ntonnes_per_year = inf\nregion = "US"\npermit_delay_months = 0\n'},
     ["run", "s.toml"], "s.toml", "domestic_mining.tonnes_per_year", None),
    ("market nan", {"s.toml": NO_SHOCK + "[market]\nholdback = nan\n"}, ["check", "s.toml"], "s.toml", "market.holdback", None),
    ("horizon of 1e9 months", {"s.toml": 'name = "x"\nhorizon_months = 1000000000\n'}, ["check", "s.toml"], "s.toml", "horizon_months", None),
    ("factor range to inf", _experiment('scenario = "short24.toml"\ndesign = "latin_hypercube"\nsamples = 4\n[factors]\nquota_cut = {low = 0.0, high = inf}\n'),
     ["batch", "exp.toml"], "factors.quota_cut", "shock.quota_cut", None),
    ("policy nan", _experiment(SWEEP + "[policies]\ns = {stockpile_months = nan}\n"), ["batch", "exp.toml"], "policies.s", "stockpile.months", None),
    ("morris with 1e8 samples", _experiment('scenario = "short24.toml"\ndesign = "morris"\nsamples = 100000000\n[factors]\nquota_cut = {low = 0.1, high = 0.5}\n'),
     ["batch", "exp.toml"], "exp.toml", "samples", None),
    ("--replications over a million runs", _experiment(SWEEP), ["batch", "exp.toml", "--replications", "10000000"], "--replications", "replications", None),
    ("--workers unbounded", _experiment(SWEEP), ["batch", "exp.toml", "--workers", "100000"], "--workers", "workers", None),
    ("case14 sobol samples 10", _experiment('scenario = "short24.toml"\ndesign = "sobol"\nsamples = 10\n[factors]\nquota_cut = {low = 0.2, high = 0.6}\n'),
     ["batch", "exp.toml"], "exp.toml", "samples", None),
    # 9. tracebacks instead of one line
    ("binary file", {"s.toml": b"\xff\xfe\x00binary"}, ["check", "s.toml"], "s.toml", "(encoding)", None),
    ("deeply nested TOML", {"s.toml": "a = " + "[" * 50_000 + "]" * 50_000 + "\n"}, ["check", "s.toml"], "s.toml", "(syntax)", None),
    ("a folder as the file", {"folder.toml/x": ""}, ["check", "folder.toml"], "folder.toml", "file", None),
    ("--seed -1", {"s.toml": 'name = "x"\n' + NO_SHOCK}, ["run", "s.toml", "--seed", "-1"], "--seed", "seed", None),
    ("--seed not a number", {"s.toml": 'name = "x"\n' + NO_SHOCK}, ["run", "s.toml", "--seed", "x"], "--seed", "invalid int", None),
    ("--out an existing file", {"s.toml": 'name = "x"\n' + NO_SHOCK, "taken": "keep me"}, ["run", "s.toml", "--out", "taken"], "--out", "out", None),
    ("--out below a file", {"s.toml": 'name = "x"\n' + NO_SHOCK, "taken": "keep me"}, ["run", "s.toml", "--out", "taken/run"], "--out", "out", None),
    ("--port 99999", {}, ["viz", "--port", "99999"], "--port", "port", None),
    ("--host that cannot be bound", {}, ["viz", "--host", "192.0.2.1", "--port", "8799"], "--host", "host", None),
    ("malformed --scheduler", _experiment(SWEEP), ["batch", "exp.toml", "--executor", "dask", "--scheduler", "notaurl::"], "--scheduler", "scheduler", None),
    ("--scheduler without dask", _experiment(SWEEP), ["batch", "exp.toml", "--scheduler", "tcp://localhost:8786"], "--scheduler", "scheduler", None),
    # 10. values never leak; a parent's key is reported against the parent
    ("unknown key in an extends parent",
     {"child.toml": 'extends = "parent.toml"\nname = "c"\n', "parent.toml": 'api_token = "s3cr3t-value"\n' + NO_SHOCK},
     ["check", "child.toml"], "parent.toml", "api_token", "s3cr3t"),
    ("bad value in an extends parent",
     {"child.toml": 'extends = "parent.toml"\nname = "c"\n', "parent.toml": NO_SHOCK + "[market]\ninventory_months = -1.0\n"},
     ["check", "child.toml"], "parent.toml", "market.inventory_months", None),
    ("unknown experiment key", _experiment('password = "hunter2-secret"\n' + SWEEP), ["batch", "exp.toml"], "exp.toml", "password", "hunter2"),
    # events that can never act
    ("e7 event after the horizon", {"s.toml": _event(kind='"outage"', nation='"MM"', deposit='"ionic_clay"', start=100, months=12)},
     ["check", "s.toml"], "s.toml", "events[0].start", None),
    ("e8 outage of zero months", {"s.toml": _event(kind='"outage"', nation='"MM"', deposit='"ionic_clay"', destination='"JP"', start=3, months=0)},
     ["check", "s.toml"], "s.toml", "events[0].months", None),
    ("outage with a destination", {"s.toml": _event(kind='"outage"', nation='"MM"', deposit='"ionic_clay"', destination='"JP"', start=3, months=2)},
     ["check", "s.toml"], "s.toml", "events[0].destination", None),
    ("ban with a cut", {"s.toml": _event(kind='"ban"', nation='"CN"', destination='"JP"', cut=0.5, start=3, months=2)},
     ["check", "s.toml"], "s.toml", "events[0].cut", None),
    ("quota with cut and tonnage", {"s.toml": _event(kind='"quota"', nation='"CN"', cut=0.5, tonnes_per_year=1000.0, start=0, months=2)},
     ["check", "s.toml"], "s.toml", "events[0].tonnes_per_year", None),
    ("destination quota in tonnes", {"s.toml": _event(kind='"quota"', nation='"CN"', destination='"US"', elements='["Dy", "Tb"]', tonnes_per_year=500.0, start=11, months=12)},
     ["check", "s.toml"], "s.toml", "events[0].destination", None),
    ("e9 quota on a mining-only nation", {"s.toml": _event(kind='"quota"', nation='"MM"', elements='["Dy", "Tb"]', cut=1.0, start=3, months=12)},
     ["check", "s.toml"], "s.toml", "events[0].nation", None),
    ("export tax on a mining-only nation", {"s.toml": _event(kind='"export_tax"', nation='"AU"', rate=0.2, start=3, months=12)},
     ["check", "s.toml"], "s.toml", "events[0].nation", None),
    ("shock on a mining-only nation", {"s.toml": 'start_year = 2025\nhorizon_months = 24\n[shock]\nexporter = "MM"\nquota_cut = 0.5\nstart = 2\nmonths = 6\n'},
     ["check", "s.toml"], "s.toml", "shock.exporter", None),
]

# The case files in shared/cases (read-only beside the checkout), run as they are.
CASE_FILES = [
    ("e7_event_after_horizon.toml", "check", "events[0].start"),
    ("e8_outage_zero_months_with_destination.toml", "check", "events[0]."),
    ("e9_myanmar_quota.toml", "check", "events[0].nation"),
    ("e11_domestic_mining_inf.toml", "run", "domestic_mining.tonnes_per_year"),
    ("e12_name_escapes_results.toml", "run", "name"),
    ("case14_sobol_not_power_of_two.toml", "batch", "samples"),
]


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def _expect_refused(folder: Path, args: list[str], names: str, key: str, hidden: str | None = None) -> str:
    """Run ``ree args`` in ``folder``: exit 2, one stderr line naming ``names`` and ``key``,
    no traceback, nothing written anywhere in ``folder``."""
    before = _tree(folder)
    done = subprocess.run([REE, *args], cwd=folder, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("ree: ") and names in lines[0] and key in lines[0], lines[0]
    assert hidden is None or hidden not in done.stderr + done.stdout
    assert _tree(folder) == before, "something was written"
    return lines[0]


@pytest.mark.parametrize("files,args,names,key,hidden", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path, files, args, names, key, hidden):
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(tmp_path)))
    line = _expect_refused(tmp_path, args, names, key, hidden)
    if "sobol" in str(files.get("exp.toml", "")):
        assert "8 or 16" in line


@pytest.mark.skipif(not CASES.is_dir(), reason="shared/cases is not beside the checkout")
@pytest.mark.parametrize("name,command,key", CASE_FILES, ids=[f"{c[1]} {c[0]}" for c in CASE_FILES])
def test_shared_case_files_are_refused(tmp_path, name, command, key):
    for case in (name, "short24.toml"):
        shutil.copy(CASES / case, tmp_path / case)
    _expect_refused(tmp_path, [command, name], name, key)


# ------------------------------------------------------------------ in process
def _numeric_fields() -> list[tuple[str, str]]:
    """(section or "" for top level or "events", field) of every int or float field."""
    found = [("", f.name) for f in dataclasses.fields(Scenario) if f.type in (int, float)]
    for section, cls in _SECTIONS.items():
        found += [(section, f.name) for f in dataclasses.fields(cls) if f.type in (int, float)]
    return found + [("events", f.name) for f in dataclasses.fields(Event) if f.type in (int, float)]


def _table(section: str, name: str, value: float) -> dict:
    if section == "":
        return {name: value}
    if section == "events":
        return {"events": [{"kind": "quota", "nation": "CN", "start": 0, "months": 1, name: value}]}
    return {section: {name: value}}


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_every_numeric_field_refuses_non_finite_values(value):
    fields = _numeric_fields()
    assert len(fields) > 60  # every section's numbers, not a hand-picked few
    for section, name in fields:
        key = name if section == "" else f"events[0].{name}" if section == "events" else f"{section}.{name}"
        with pytest.raises(ScenarioError) as raised:
            scenario_from_dict(_table(section, name, value), "x.toml")
        assert raised.value.key == key, (key, str(raised.value))
        if section not in ("", "events"):  # the same setting as a keyword or experiment factor
            with pytest.raises(ScenarioError, match="finite|whole number"):
                Scenario().with_settings({f"{section}.{name}": value})


def test_with_settings_accepts_numpy_scalars_as_python_values():
    scenario = Scenario().with_settings({
        "horizon_months": np.int64(12), "quota_cut": np.float64(0.3), "agreement": np.bool_(True),
        "shock_start": np.int32(2), "stockpile_months": np.float32(1.5),
    })
    assert type(scenario.horizon_months) is int and scenario.horizon_months == 12
    assert type(scenario.shock.quota_cut) is float and scenario.shock.quota_cut == 0.3
    assert scenario.agreement.enabled is True and type(scenario.stockpile.months) is float
    with pytest.raises(ScenarioError, match="whole number"):
        Scenario().with_settings({"horizon_months": np.float64(12.0)})
    with pytest.raises(ScenarioError, match="a number"):
        Scenario().with_settings({"quota_cut": "0.3"})  # a string is never turned into a number


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\\b", "/abs", "C:x", "a\x07b", " lead", "trail ", ""])
def test_names_that_would_leave_results_are_refused(name):
    with pytest.raises(ScenarioError) as raised:
        scenario_from_dict({"name": name}, "x.toml")
    assert raised.value.key == "name"


def test_events_built_in_python_refuse_keys_their_kind_ignores():
    base = Scenario(horizon_months=24)
    for event, key in [
        (Event(kind="outage", nation="CN", deposit="bayan_obo", destination="JP", start=0, months=2), "events[0].destination"),
        (Event(kind="quota", nation="CN", destination="US", tonnes_per_year=500.0, start=0, months=2), "events[0].destination"),
        (Event(kind="ban", nation="CN", destination="JP", rate=0.2, start=0, months=2), "events[0].rate"),
        (Event(kind="export_tax", nation="MM", rate=0.2, start=0, months=2), "events[0].nation"),
        (Event(kind="outage", nation="CN", deposit="bayan_obo", start=0, months=0), "events[0].months"),
    ]:
        with pytest.raises(ScenarioError) as raised:
            dataclasses.replace(base, events=(event,)).with_overrides()
        assert raised.value.key == key
    # a ban on a mining-only nation acts (it blocks concentrate), so it stays
    dataclasses.replace(base, events=(Event(kind="ban", nation="MM", destination="JP", start=0, months=2),)).with_overrides()


def test_every_shipped_scenario_and_experiment_still_loads():
    files = sorted(EXPERIMENTS.glob("*.toml")) + sorted((EXPERIMENTS / "levers").glob("*.toml"))
    experiments = [f for f in files if "scenario =" in f.read_text()]
    assert len(experiments) >= 4
    for path in files:
        (load_experiment if path in experiments else load_scenario)(path)
