"""Scenario files: what loads, and the one-line error for everything that should not."""

import pytest

from abm import Scenario, ScenarioError, load_scenario
from abm.data import load_calibration
from tests.conftest import EXPERIMENTS


def test_shipped_scenarios_load_with_their_documented_settings():
    baseline = load_scenario(EXPERIMENTS / "baseline.toml")
    shock = load_scenario(EXPERIMENTS / "quota_shock.toml")
    assert baseline.horizon_months == 240 and baseline.start_year == 2025
    assert baseline.shock.quota_cut == 0.0
    assert (shock.shock.exporter, shock.shock.quota_cut, shock.shock.start, shock.shock.months) == ("CN", 0.4, 12, 24)
    assert shock.shock.elements == load_calibration().elements  # every element by default
    assert shock.market == baseline.market  # extends: only the shock differs


def test_defaults_come_from_the_parameters_table():
    from abm.data import load_calibration

    defaults = load_calibration().parameter_defaults("market")
    assert Scenario().market.holdback == defaults["holdback"]


BAD_INPUTS = [
    ("unknown key", 'name = "x"\ncolour = "red"\n', "colour"),
    ("wrong type", 'name = "x"\nhorizon_months = "long"\n', "horizon_months"),
    ("float for int", 'name = "x"\nhorizon_months = 12.5\n', "horizon_months"),
    ("negative value", "[market]\ninventory_months = -1\n", "market.inventory_months"),
    ("share above 1", "[contracts]\nshare = 1.5\n", "contracts.share"),
    ("share below 0", "[shock]\nquota_cut = -0.1\n", "shock.quota_cut"),
    ("unknown element", '[shock]\nelements = ["Nd", "Xx"]\n', "shock.elements"),
    ("unknown nation", '[shock]\nexporter = "ZZ"\n', "shock.exporter"),
    ("unknown pair", '[tension]\npairs = ["US-ZZ"]\n', "tension.pairs"),
    ("unknown section key", "[market]\nspeed = 2\n", "market.speed"),
    ("event kind", '[[events]]\nkind = "war"\nnation = "CN"\nstart = 0\nmonths = 1\n', "events[0].kind"),
    ("ban without destination", '[[events]]\nkind = "ban"\nnation = "CN"\nstart = 0\nmonths = 1\n', "events[0].destination"),
    ("missing required", '[[events]]\nkind = "quota"\nnation = "CN"\nmonths = 1\n', "events[0].start"),
    ("malformed TOML", 'name = "x\n', "(syntax)"),
    ("exporter without mines or refiners", '[shock]\nexporter = "JP"\n', "shock.exporter"),
    ("outage of a deposit the nation lacks",
     '[[events]]\nkind = "outage"\nnation = "AU"\ndeposit = "ionic_clay"\nstart = 0\nmonths = 1\n', "events[0].deposit"),
]


@pytest.mark.parametrize("case,text,key", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_file_key_value_and_expectation(tmp_path, case, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert raised.value.key == key
    assert "expected" in message


def test_extends_merges_tables_and_reports_a_missing_parent(tmp_path):
    (tmp_path / "child.toml").write_text('extends = "parent.toml"\n[contracts]\nshare = 0.5\n')
    (tmp_path / "parent.toml").write_text('name = "p"\n[market]\ninventory_months = 3.0\n')
    child = load_scenario(tmp_path / "child.toml")
    assert (child.name, child.market.inventory_months, child.contracts.share) == ("p", 3.0, 0.5)
    (tmp_path / "orphan.toml").write_text('extends = "missing.toml"\n')
    with pytest.raises(ScenarioError, match="extends"):
        load_scenario(tmp_path / "orphan.toml")


def test_model_keywords_are_validated_like_file_keys():
    scenario = Scenario().with_overrides(quota_cut=0.3, shock_start=5, shock_months=6, tension_volatility=0.1)
    assert (scenario.shock.quota_cut, scenario.shock.start, scenario.shock.months) == (0.3, 5, 6)
    assert scenario.tension.volatility == 0.1
    with pytest.raises(ScenarioError, match="shock.quota_cut"):
        Scenario().with_overrides(quota_cut=1.5)
    with pytest.raises(ScenarioError, match="horizon_months"):
        Scenario().with_overrides(horizon_months=0)
