"""Tension process and the rules that turn tension and scripted events into restrictions."""

import dataclasses

import numpy as np
import pytest

from abm.data import load_calibration
from abm.policy import evolve_tension, export_rules, tension_quota_cut
from abm.scenario import Event, Scenario, Shock

CALIBRATION = load_calibration()
REGIONS, ELEMENTS, DEPOSITS = CALIBRATION.regions, CALIBRATION.elements, CALIBRATION.deposits


def test_tension_reverts_to_its_mean_without_noise():
    params = dataclasses.replace(Scenario().tension, volatility=0.0, jump_probability=0.0, mean=0.3, reversion=0.1)
    tension = np.array([0.9])
    for _ in range(60):
        tension = evolve_tension(tension, params, np.random.default_rng(0))
    assert tension[0] == pytest.approx(0.3 + 0.6 * 0.9**60)


def test_tension_jumps_and_stays_in_the_unit_interval():
    params = dataclasses.replace(Scenario().tension, jump_probability=1.0, jump_size=0.5, volatility=0.5)
    tension = evolve_tension(np.full(1000, 0.9), params, np.random.default_rng(1))
    assert tension.min() >= 0.0 and tension.max() <= 1.0
    assert np.mean(tension) > 0.9


def test_tension_quota_cut_scales_from_threshold_to_maximum():
    params = dataclasses.replace(Scenario().tension, quota_threshold=0.6, max_tension_cut=0.5)
    assert tension_quota_cut(0.5, params) == 0.0
    assert tension_quota_cut(0.8, params) == pytest.approx(0.25)
    assert tension_quota_cut(1.0, params) == pytest.approx(0.5)


def test_shock_and_events_apply_only_in_their_months():
    scenario = Scenario(
        shock=Shock(exporter="CN", quota_cut=0.4, start=12, months=24, elements=("Dy", "Tb")),
        events=(Event(kind="ban", nation="CN", destination="JP", start=3, months=2, elements=("Nd",)),),
    )
    calm = np.zeros(len(scenario.tension.pairs))
    cn, jp = REGIONS.index("CN"), REGIONS.index("JP")
    before, during, after = (export_rules(scenario, m, calm, REGIONS, ELEMENTS, DEPOSITS) for m in (11, 12, 36))
    assert before.quota_cut.max() == 0.0 and after.quota_cut.max() == 0.0
    assert during.quota_cut[cn].tolist() == [0.4 if e in ("Dy", "Tb") else 0.0 for e in ELEMENTS]
    ban = export_rules(scenario, 4, calm, REGIONS, ELEMENTS, DEPOSITS).banned
    assert ban[cn, ELEMENTS.index("Nd"), jp] and ban.sum() == 1
    assert not export_rules(scenario, 5, calm, REGIONS, ELEMENTS, DEPOSITS).banned.any()


def test_high_tension_tightens_quota_and_bans_the_partner_the_strictest_rule_wins():
    scenario = Scenario(shock=Shock(exporter="CN", quota_cut=0.1, start=0, months=12))
    pairs = scenario.tension.pairs  # US-CN, JP-CN, EU-CN, AU-CN
    tension = np.array([0.95, 0.9, 0.9, 0.9])
    rules = export_rules(scenario, 0, tension, REGIONS, ELEMENTS, DEPOSITS)
    cn = REGIONS.index("CN")
    expected_cut = tension_quota_cut(float(tension.mean()), scenario.tension)
    assert rules.quota_cut[cn] == pytest.approx(np.full(len(ELEMENTS), max(0.1, expected_cut)))
    banned_to = {REGIONS[d] for d in np.nonzero(rules.banned[cn].any(axis=0))[0]}
    assert banned_to == {"US", "JP", "EU", "AU"}  # all above the 0.85 threshold
    assert rules.banned[cn, :, REGIONS.index("US")].tolist() == [e in ("Dy", "Tb") for e in ELEMENTS]
    assert pairs == ("US-CN", "JP-CN", "EU-CN", "AU-CN")  # the restrictor of each pair is CN
