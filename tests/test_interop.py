"""What a Mesa, EMA Workbench or SALib user expects: seeded replications, numpy inputs,
declared outcomes, labelled batch_run rows, per-agent records, Sobol intervals and a full
EMA export."""

import warnings

import mesa
import numpy as np
import pandas as pd
import pytest
from mesa.experimental.scenarios import Scenario as MesaScenario

from abm import RareEarthModel, Scenario, ScenarioError, evaluate, label_batch_run, outcome_names
from abm.batch import load_experiment, run_batch
from abm.batch.report import _sensitivity_text, flag_unconverged, write_report
from abm.metrics import METRICS, STAGES, UNITS, metric_names, parse_metric
from abm.run import run_metrics, tidy_agent_series, tidy_product_series, tidy_series
from tests.conftest import EXPERIMENTS

SHORT = {"horizon_months": 12, "shock_start": 2}


@pytest.fixture(scope="module")
def ema():
    with warnings.catch_warnings():  # it warns about optional parallel back-ends at import
        warnings.simplefilter("ignore")
        return pytest.importorskip("ema_workbench")


# ------------------------------------------------------------------ evaluate for EMA Workbench
def test_ema_integer_and_boolean_parameters_reach_evaluate_and_replications_differ(ema):
    model = ema.ReplicatorModel("ree", function=evaluate)
    model.uncertainties = [
        ema.IntegerParameter("shock_start", 1, 4), ema.BooleanParameter("agreement"),
        ema.RealParameter("quota_cut", 0.2, 0.6),
    ]
    model.constants = [ema.Constant("horizon_months", 12)]
    model.replications = [{"seed": seed} for seed in (1, 2, 3)]
    # A scalar outcome of a ReplicatorModel aggregates the replications with its function.
    model.outcomes = [
        ema.ScalarOutcome("tension_spread", variable_name="mean_tension_index", function=np.std),
        ema.ScalarOutcome("volatility_spread", variable_name="world_price_volatility_fraction_Nd", function=np.std),
        ema.ScalarOutcome("tension_first_seed", variable_name="mean_tension_index", function=lambda v: v[0]),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiments, outcomes = ema.perform_experiments(model, scenarios=2)
    assert len(experiments) == 2
    assert np.all(outcomes["tension_spread"] > 0) and np.all(outcomes["volatility_spread"] > 0)  # 3 seeds, 3 runs
    first = experiments.iloc[0]
    direct = evaluate(seed=1, horizon_months=12, shock_start=int(first["shock_start"]),
                      agreement=bool(first["agreement"]), quota_cut=float(first["quota_cut"]))
    assert direct["mean_tension_index"] == outcomes["tension_first_seed"][0]


def test_evaluate_takes_numpy_scalars_as_plain_values():
    plain = evaluate(seed=2, quota_cut=0.3, agreement=True, **SHORT)
    numpy = evaluate(seed=np.int64(2), quota_cut=np.float64(0.3), agreement=np.bool_(True),
                     horizon_months=np.int64(12), shock_start=np.int64(2))
    assert numpy == plain


@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float64("nan")])
def test_evaluate_refuses_non_finite_settings(value):
    with pytest.raises(ScenarioError, match="quota_cut"):
        evaluate(seed=1, quota_cut=value, **SHORT)


def test_evaluate_without_a_seed_says_in_one_line_how_to_pass_one():
    with pytest.raises(ScenarioError) as raised:
        evaluate(quota_cut=0.4, **SHORT)
    message = str(raised.value)
    assert "\n" not in message and "seed" in message
    assert "ReplicatorModel" in message and "model.replications" in message
    for bad in (-1, 1.5, True):
        with pytest.raises(ScenarioError, match="seed"):
            evaluate(seed=bad, **SHORT)


def test_outcome_names_are_the_keys_evaluate_returns_in_order():
    assert list(evaluate(seed=1, **SHORT)) == outcome_names()


# ------------------------------------------------------------------ the metric catalogue
def test_every_metric_name_follows_the_grammar_of_the_catalogue():
    model = RareEarthModel(rng=1, **SHORT)
    while model.running:
        model.step()
    names = list(run_metrics(model))
    assert names == metric_names(model.elements, model.programmes.names)
    assert len(names) == len(set(names))
    suffixes = {"", *model.elements, *STAGES, *model.programmes.names}
    for name in names:
        metric, suffix = parse_metric(name)
        assert metric.unit in UNITS and suffix in suffixes, name
        assert name == metric.name(suffix)
    assert {parse_metric(name)[0].base for name in names} == set(METRICS)
    with pytest.raises(KeyError):
        parse_metric("world_price_volatility_Dy")  # the old name, without its unit


# ------------------------------------------------------------------ Mesa naming
def test_mesa_scenario_carries_the_keywords_the_run_used():
    file = EXPERIMENTS / "quota_shock.toml"
    model = RareEarthModel(rng=5, scenario=file, quota_cut=0.25, stockpile_months=2.0)
    assert isinstance(model.scenario, MesaScenario)
    assert model.scenario.rng == 5 and model.scenario.scenario == file and model.scenario.record_agents is False
    assert model.scenario.quota_cut == 0.25 == model.spec.shock.quota_cut
    assert model.scenario.stockpile_months == 2.0
    assert model.scenario.shock_months == model.spec.shock.months  # from the file
    assert isinstance(model.spec, Scenario) and model.spec.name == "quota_shock"


def test_the_seed_alone_still_fixes_the_run():
    first, again = RareEarthModel(rng=9, **SHORT), RareEarthModel(rng=9, **SHORT)
    for model in (first, again):
        while model.running:
            model.step()
    assert run_metrics(first) == run_metrics(again)


# ------------------------------------------------------------------ mesa.batch_run
def _rerun(row: dict) -> pd.DataFrame:
    parameters = {k: v for k, v in row.items() if k in ("scenario", "quota_cut", "domestic_mining", *SHORT)}
    model = RareEarthModel(rng=row["rng"], **parameters)
    while model.running:
        model.step()
    return tidy_series(model)


def test_label_batch_run_gives_the_tidy_table_of_each_run():
    # A domestic mine in Japan adds a price zone: the labels differ between rows.
    new_producer = Scenario().with_settings({"domestic_mining.region": "JP"})
    rows = mesa.batch_run(
        RareEarthModel, parameters={"scenario": new_producer, "quota_cut": [0.0, 0.5],
                                    "domestic_mining": [0.0, 5000.0], **SHORT},
        rng=[3, 4], max_steps=12, number_processes=1, data_collection_period=-1, display_progress=False,
    )
    table = label_batch_run(rows)
    assert list(table.columns[:3]) == ["RunId", "iteration", "Step"]
    assert list(table.columns[-4:]) == ["variable", "element", "region", "value"]
    assert {"quota_cut", "domestic_mining", "rng"} <= set(table.columns)
    assert len(rows) == 8 and set(table["RunId"]) == set(range(8)) and set(table["Step"]) == {12}
    zones = {}
    for row in rows:
        mine = table[(table["RunId"] == row["RunId"]) & (table["variable"] == "price")]
        alone = _rerun(row)
        alone = alone[(alone["step"] == 12) & (alone["variable"] == "price")]
        assert mine["value"].to_numpy() == pytest.approx(alone["value"].to_numpy())
        assert list(mine["region"].astype(str)) == list(alone["region"].astype(str))
        assert list(mine["element"].astype(str)) == list(alone["element"].astype(str))
        zones[row["domestic_mining"]] = set(mine["region"].astype(str))
    assert zones[5000.0] == zones[0.0] | {"JP"}


def test_batch_run_rows_carry_per_agent_data_with_record_agents():
    parameters = {"quota_cut": 0.5, **SHORT}
    with_agents = mesa.batch_run(
        RareEarthModel, parameters={**parameters, "record_agents": True}, rng=[3], max_steps=12,
        number_processes=1, data_collection_period=-1, display_progress=False,
    )
    model = RareEarthModel(rng=3, **parameters)
    assert len(with_agents) == len(model.agents)  # one row per agent
    users = [row for row in with_agents if row["agent_type"] == "EndUser"]
    assert len(users) == len(model.end_users)
    assert all(row["shortfall_t"].shape == (len(model.products),) for row in users)
    assert {row["agent_type"] for row in with_agents} >= {"ExportingNation", "Converter", "EndUser", "Recycler"}
    # The model's own records are untouched by the agent columns.
    plain = mesa.batch_run(RareEarthModel, parameters=parameters, rng=[3], max_steps=12, number_processes=1,
                           data_collection_period=-1, display_progress=False)
    labelled, plain_table = label_batch_run(with_agents), label_batch_run(plain)
    assert labelled.drop(columns="record_agents").equals(plain_table)


# ------------------------------------------------------------------ per-agent series
def test_tidy_agent_series_adds_up_to_the_model_records():
    model = RareEarthModel(rng=4, quota_cut=0.5, stockpile_months=2.0, record_agents=True, **SHORT)
    while model.running:
        model.step()
    agents = tidy_agent_series(model)
    columns = ["step", "agent_type", "agent_id", "region", "sector", "variable", "element", "product", "value"]
    assert list(agents.columns) == columns
    assert set(agents["step"]) == set(range(13))
    assert set(agents["agent_type"]) == {"ExportingNation", "Converter", "EndUser", "Recycler", "StrategicStockpile",
                                         "StateReserve"}
    series, products = tidy_series(model), tidy_product_series(model)

    def model_total(table, variable, item):
        rows = table[(table["variable"] == variable) & (table["partner"] == "all")] if item == "product" else \
            table[table["variable"] == variable]
        return rows.groupby(["step", item], observed=True)["value"].sum()

    def agent_total(variable, item, agent_type=None):
        rows = agents[agents["variable"] == variable]
        if agent_type:
            rows = rows[rows["agent_type"] == agent_type]
        return rows.groupby(["step", item], observed=True)["value"].sum()

    for agent_variable, variable in (("mined_t", "mined"), ("exports_t", "exports"), ("recycled_t", "recycled")):
        assert agent_total(agent_variable, "element").to_numpy() == pytest.approx(
            model_total(series, variable, "element").to_numpy()), variable
    assert agent_total("bought_t", "element", "StateReserve").to_numpy() == pytest.approx(
        model_total(series, "reserve_purchases", "element").to_numpy())
    assert agent_total("shortfall_t", "product").to_numpy() == pytest.approx(
        model_total(products, "shortfall", "product").to_numpy())
    made = agent_total("produced_t", "product", "Converter")
    recorded = model_total(products, "production", "product")
    plant_made = [p for p, stage in zip(model.products, model.product_stage, strict=True) if stage != "concentrate"]
    assert made.loc[:, plant_made].to_numpy() == pytest.approx(recorded.loc[:, plant_made].to_numpy())
    users = agents[agents["agent_type"] == "EndUser"]
    plants = agents[agents["agent_type"] == "Converter"]
    assert (users["sector"] != "").all() and set(plants["sector"]) == {"oxide", "metal", "magnet"}
    others = agents[~agents["agent_type"].isin(["EndUser", "Converter"])]
    assert (others["sector"] == "").all()
    capacity = agents[agents["variable"] == "capacity_t"]
    assert set(capacity["element"]) == {"all"} and (capacity["value"] >= 0).all()


def test_agents_are_recorded_only_when_asked():
    model = RareEarthModel(rng=1, **SHORT)
    assert not model.datacollector.agenttype_reporters
    with pytest.raises(ValueError, match="record_agents=True"):
        tidy_agent_series(model)


# ------------------------------------------------------------------ Sobol report
SOBOL = """
name = "sobol_small"
scenario = "{scenario}"
design = "sobol"
samples = 8
replications = 1
seed = 11
record_every = 6
series = ["price"]
[factors]
quota_cut = {{low = 0.0, high = 0.8}}
"market.holdback" = {{low = 0.5, high = 3.0}}
"""


def _short_base(tmp_path) -> str:
    path = tmp_path / "short.toml"
    path.write_text(f'extends = "{(EXPERIMENTS / "quota_shock.toml").as_posix()}"\nhorizon_months = 12\n'
                    "[shock]\nstart = 2\n")
    return path.as_posix()


def test_sobol_report_shows_confidence_intervals_and_flags_unconverged_indices(tmp_path):
    path = tmp_path / "sobol.toml"
    path.write_text(SOBOL.format(scenario=_short_base(tmp_path)))
    experiment = load_experiment(path)
    out = tmp_path / "store"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_batch(experiment, out, executor="serial", progress=False)
        write_report(out, experiment)
    assert not [w for w in caught if "SALib" in str(w.filename)]
    indices = pd.read_csv(out / "sensitivity_indices.csv")
    assert {"S1", "S1_conf", "ST", "ST_conf", "unconverged"} <= set(indices.columns)
    assert len(indices) == 3 * 2
    expected = flag_unconverged(indices.drop(columns="unconverged"))["unconverged"]
    assert indices["unconverged"].equals(expected)
    report = (out / "report.md").read_text()
    assert "S1_conf" in report and "ST_conf" in report and "confidence interval" in report


def test_an_index_outside_zero_one_beyond_its_interval_is_flagged_in_a_column_and_in_words():
    made_up = pd.DataFrame({
        "outcome": ["shortfall_outside_exporter_t"] * 4, "factor": ["a", "b", "c", "d"],
        "S1": [0.5, 1.04, 1.04, -0.3], "S1_conf": [0.1, 0.01, 0.2, 0.1],
        "ST": [0.6, 1.0, 2.59, 0.1], "ST_conf": [0.1, 0.1, 2.0, np.nan],
    })
    flagged = flag_unconverged(made_up)
    assert list(flagged["unconverged"]) == [False, True, False, True]
    words = "\n".join(_sensitivity_text(flagged))
    assert "Not converged" in words and "more samples" in words and "b on shortfall_outside_exporter_t" in words
    assert "Not converged" not in "\n".join(_sensitivity_text(flagged.iloc[[0, 2]]))


# ------------------------------------------------------------------ EMA export
POLICIES = """
name = "ema_small"
scenario = "{scenario}"
replications = 1
seed = 3
record_every = 3
series = ["price", "shortfall"]
[factors]
quota_cut = [0.3, 0.6]
[policies]
stock = {{stockpile_months = 2.0}}
agree = {{agreement = true}}
"""


def test_ema_export_has_lever_values_every_outcome_and_the_time_series(tmp_path, ema):
    path = tmp_path / "ema.toml"
    path.write_text(POLICIES.format(scenario=_short_base(tmp_path)))
    experiment = load_experiment(path)
    out = tmp_path / "store"
    run_batch(experiment, out, executor="serial", progress=False)
    write_report(out, experiment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        experiments, outcomes = ema.load_results(str(out / "ema_results.tar.gz"))
    assert len(experiments) == 6
    by_policy = experiments.groupby("policy", observed=True)
    assert by_policy["stockpile_months"].unique().to_dict() == {"agree": [0.0], "none": [0.0], "stock": [2.0]}
    assert {k: list(v) for k, v in by_policy["agreement"].unique().to_dict().items()} == {
        "agree": [True], "none": [False], "stock": [False]}
    assert set(experiments["quota_cut"]) == {0.3, 0.6}
    assert set(outcome_names()) <= set(outcomes)
    metrics = pd.read_parquet(out / "metrics.parquet").set_index("run_id")
    order = pd.read_parquet(out / "metrics.parquet")["run_id"]
    assert outcomes["unserved_value_usd"] == pytest.approx(metrics.loc[order, "unserved_value_usd"].to_numpy())
    steps = [0, 3, 6, 9, 12]
    assert list(outcomes["TIME"][0]) == steps
    for element in ("Nd", "Dy"):
        assert outcomes[f"world_price_series_{element}"].shape == (6, len(steps))
        shortfall = outcomes[f"shortfall_outside_exporter_series_{element}"]
        assert shortfall.shape == (6, len(steps))
        # Its sum over recorded steps is at most the run's whole shortfall outside the exporter.
        assert np.all(shortfall.sum(axis=1) <= metrics.loc[order, f"shortfall_outside_exporter_t_{element}"] + 1e-6)
    assert np.all(outcomes["world_price_series_Nd"] > 0)

    (out / "series.parquet").unlink()  # a store without series: scalars only
    write_report(out, experiment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, scalars_only = ema.load_results(str(out / "ema_results.tar.gz"))
    assert "TIME" not in scalars_only and set(outcome_names()) <= set(scalars_only)


def test_morris_indices_carry_the_interval_of_mu_star(tmp_path):
    """Indices from made-up outcomes on the design rows (no runs): one factor matters."""
    from abm.batch.plan import design_matrix, point_id
    from abm.batch.report import SENSITIVITY_OUTCOMES, sensitivity_indices

    path = tmp_path / "morris.toml"
    path.write_text(SOBOL.format(scenario=_short_base(tmp_path)).replace('"sobol"', '"morris"').replace("= 8", "= 4"))
    experiment = load_experiment(path)
    points = {point_id(row): row for row in design_matrix(experiment)}
    metrics = pd.DataFrame([
        {"point_id": pid, "policy": "none", **dict.fromkeys(SENSITIVITY_OUTCOMES, 10.0 * row["quota_cut"])}
        for pid, row in points.items()
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        indices = sensitivity_indices(metrics, experiment)
    assert not [w for w in caught if "SALib" in str(w.filename)]
    assert {"mu_star", "mu_star_conf", "sigma"} <= set(indices.columns) and "unconverged" not in indices
    by_factor = indices.groupby("factor")["mu_star"].mean()
    assert by_factor["quota_cut"] == pytest.approx(8.0) and by_factor["market.holdback"] == pytest.approx(0.0)
