"""The browser app without a browser: its model class against Mesa's SolaraViz machinery,
its charts, and its page rendered headless with ``solara.render``."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

import ipyvuetify as v
import ipywidgets
import numpy as np
import pytest
import solara
from matplotlib.patches import FancyArrowPatch
from mesa.experimental.scenarios import Scenario as MesaScenario
from mesa.visualization.solara_viz import _build_model_init_kwargs, _check_model_params

from abm import RareEarthModel, ScenarioError, load_scenario
from abm.viz import app, charts, controls, server

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


# ------------------------------------------------------------------ the model SolaraViz builds
def test_browser_model_takes_the_model_keywords_but_not_scenario():
    parameters = inspect.signature(controls.BrowserModel.__init__).parameters
    model_keywords = set(inspect.signature(RareEarthModel.__init__).parameters) - {"self", "scenario"}
    assert "scenario" not in parameters
    assert "scenario_file" in parameters
    assert model_keywords <= set(parameters)
    assert not any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def test_every_control_is_a_keyword_the_model_takes():
    """Mesa's own check, run when the page loads: a control for a keyword the model does
    not take (a lever not yet in the model) is refused."""
    model = controls.BrowserModel(rng=0)
    params = controls.model_params(controls.scenario_files())
    _check_model_params(model, params)
    with pytest.raises(ValueError, match="no_such_lever"):
        _check_model_params(model, {**params, "no_such_lever": controls.override("Not in the model")})


def test_mesa_reset_would_replace_a_scenario_path_on_the_bare_model():
    """Why BrowserModel exists: Mesa 3.5's Reset passes its own Scenario object as
    ``scenario=`` to a model that accepts ``scenario``."""
    model = RareEarthModel(rng=0, scenario=EXPERIMENTS / "quota_shock.toml")
    kwargs = _build_model_init_kwargs(
        model, {"scenario": str(EXPERIMENTS / "quota_shock.toml"), "rng": 0},
        add_scenario_when_empty=True, require_model_accepts_scenario=True,
    )
    assert isinstance(kwargs["scenario"], MesaScenario)


def test_mesa_reset_rebuilds_the_browser_model_with_the_chosen_scenario_and_overrides():
    model = controls.BrowserModel(**controls.initial_values(controls.model_params(controls.scenario_files())))
    assert model.scenario_file == "baseline.toml"
    values = {"scenario_file": "quota_shock.toml", "rng": "5", "quota_cut": "0.6", "shock_start": "3",
              "shock_months": "", "tension_volatility": ""}
    kwargs = _build_model_init_kwargs(
        model, values, add_scenario_when_empty=True, require_model_accepts_scenario=True
    )
    assert "scenario" not in kwargs
    rebuilt = type(model)(**kwargs)
    file = load_scenario(EXPERIMENTS / "quota_shock.toml")
    assert rebuilt.spec.name == "quota_shock"
    assert rebuilt.spec.shock.quota_cut == 0.6
    assert rebuilt.spec.shock.start == 3
    assert rebuilt.spec.shock.months == file.shock.months  # blank: the file's value
    assert rebuilt.spec.tension.volatility == file.tension.volatility
    assert rebuilt.control_errors == []


def test_same_seed_text_gives_the_same_run_as_the_model():
    ours = controls.BrowserModel(scenario_file="quota_shock.toml", rng="3", quota_cut="0.5")
    theirs = RareEarthModel(rng=3, scenario=EXPERIMENTS / "quota_shock.toml", quota_cut=0.5)
    for _ in range(5):
        ours.step()
        theirs.step()
    np.testing.assert_array_equal(ours.price, theirs.price)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [("quota_cut", "0.25", 0.25), ("quota_cut", " ", None), ("shock_start", "12", 12),
     ("shock_start", "12.0", 12), ("rng", "", None), ("rng", "42", 42), ("quota_cut", 0.3, 0.3),
     ("agreement", "on", True), ("agreement", "off", False), ("agreement", controls.FROM_FILE, None)],
)
def test_text_from_a_box_becomes_the_keyword_type(name, text, expected):
    assert controls.coerce(name, text) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [({"quota_cut": "abc"}, "quota_cut = 'abc': expected a number"),
     ({"shock_start": "2.5"}, "shock_start = '2.5': expected a whole number"),
     ({"quota_cut": "2"}, "quota_cut"),
     ({"rng": "seven"}, "a random seed"),
     ({"agreement": "maybe"}, "on or off")],
)
def test_a_refused_control_is_reported_and_the_file_value_used(values, message):
    model = controls.BrowserModel(scenario_file="quota_shock.toml", **values)
    file = load_scenario(EXPERIMENTS / "quota_shock.toml")
    assert len(model.control_errors) == 1
    assert message in model.control_errors[0]
    assert model.control_errors[0].startswith("Not applied")
    assert model.spec.shock == file.shock


def loads(path: Path) -> bool:
    try:
        load_scenario(path)
    except ScenarioError:
        return False
    return True


def test_scenario_select_lists_the_files_that_load_default_first(tmp_path, caplog):
    (tmp_path / "levers").mkdir()
    (tmp_path / "levers" / "deep.toml").write_text('extends = "../baseline.toml"\nname = "deep"\n')
    (tmp_path / "a_first.toml").write_text('name = "a"\n')
    (tmp_path / "baseline.toml").write_text('name = "baseline"\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nhorizon_months = "long"\n')
    (tmp_path / "sweep.toml").write_text('name = "sweep"\nscenario = "baseline.toml"\n')  # a batch plan
    with caplog.at_level("INFO", logger="abm.viz.controls"):
        assert controls.scenario_files(tmp_path) == ["baseline.toml", "a_first.toml", "levers/deep.toml"]
    assert "broken.toml" in caplog.text and "sweep.toml" in caplog.text
    found = controls.scenario_files()
    assert found[0] == "baseline.toml"
    assert "quota_shock.toml" in found
    assert sorted(found) == sorted(
        p.relative_to(EXPERIMENTS).as_posix() for p in EXPERIMENTS.rglob("*.toml") if loads(p)
    )


def test_a_scenario_in_a_subfolder_and_a_lever_control_build():
    levers = next(name for name in controls.scenario_files() if "/" in name)  # e.g. levers/agreement.toml
    model = controls.BrowserModel(scenario_file=levers, rng=0, stockpile_months="3", agreement="on")
    assert model.control_errors == []
    assert model.spec.stockpile.months == 3.0 and model.spec.agreement.enabled is True
    assert {"stockpile_months 3", "agreement on"} <= set(app.levers_set(model.spec))
    assert app.levers_set(controls.BrowserModel(rng=0).spec) == []


# ------------------------------------------------------------------------------ charts
@pytest.fixture(scope="module")
def shocked():
    """Quota shock from month 2, run to month 8: the quota binds."""
    model = controls.BrowserModel(scenario_file="quota_shock.toml", rng=1, shock_start="2")
    for _ in range(8):
        model.step()
    return model


def test_each_chart_has_units_on_its_axis(shocked):
    labels = {
        "USD/kg": charts.price_figure(shocked, "Nd"),
        "t/month": charts.supply_figure(shocked, "Nd"),
        "shortfall (t/month)": charts.shortfall_figure(shocked, "Dy"),
        "stock held (t)": charts.stockpile_figure(shocked, "Nd"),
        "index 0-1": charts.tension_figure(shocked),
    }
    for unit, figure in labels.items():
        assert unit in figure.axes[0].get_ylabel()
        assert "month" in figure.axes[0].get_xlabel()


def test_price_chart_compares_domestic_zones_with_the_world_on_a_log_axis(shocked):
    ax = charts.price_figure(shocked, "Nd").axes[0]
    assert ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert "world market" in labels and "CN domestic" in labels
    assert charts.price_figure(shocked, "Nd", log=False).axes[0].get_yscale() == "linear"


def test_months_with_a_quota_are_shaded(shocked):
    active = charts.quota_months(shocked, "Nd")
    assert not active[:2].any() and active[3:].all()
    ax = charts.supply_figure(shocked, "Nd").axes[0]
    assert len(ax.patches) >= 1  # the axvspan


def test_trade_network_marks_links_closed_by_the_quota_dashed_red(shocked):
    edges = charts.trade_edges(shocked, "Nd")
    closed = {(a, b) for a, b, _, restricted in edges if restricted}
    assert closed and all(a == "CN" for a, _ in closed)
    figure = charts.trade_network_figure(shocked, "Nd")
    arrows = [p for p in figure.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(edges)
    red = [a for a in arrows if "restricted" in (a.get_gid() or "")]
    assert len(red) == len(closed)
    for arrow in red:
        assert arrow.get_linestyle() not in ("-", "solid")
        assert np.allclose(arrow.get_edgecolor()[:3], (0xD6 / 255, 0x27 / 255, 0x28 / 255))
    widths = {a.get_gid(): a.get_linewidth() for a in arrows}
    biggest = max(edges, key=lambda edge: edge[2])
    assert widths[f"{biggest[0]}->{biggest[1]}{' restricted' if biggest[3] else ''}"] == max(widths.values())


# ------------------------------------------------------------ the supply chain, by product
def test_product_price_chart_shows_the_recorded_price_of_each_product_by_region(shocked):
    """No product: this month's price of every product with the element, one row per
    product, one column per region; one product: its price in each region over time."""
    recorded = charts.history(shocked, "product_price")  # [T, P, R]
    rows = [p for p, name in enumerate(shocked.products) if shocked.chain.content[p, shocked.elements.index("Dy")] > 0]
    assert [shocked.product_stage[p] for p in rows] == sorted(
        (shocked.product_stage[p] for p in rows), key=["concentrate", "oxide", "metal", "magnet"].index
    )
    assert {"Dy_oxide", "DyFe_alloy", "magnet_UH"} <= {shocked.products[p] for p in rows}
    assert "magnet_N" not in {shocked.products[p] for p in rows}  # no Dy in it
    np.testing.assert_array_equal(charts.product_prices(shocked, "Dy"), recorded[-1, rows])
    figure = charts.product_price_figure(shocked, "Dy")
    ax = figure.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), recorded[-1, rows] / shocked.product_reference[rows, None])
    assert [t.get_text() for t in ax.get_yticklabels()] == [shocked.products[p] for p in rows]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(shocked.regions)
    assert "USD/kg" in ax.get_title() and "month 8" in ax.get_title()

    p = shocked.products.index("magnet_N")
    ax = charts.product_price_figure(shocked, "Nd", "magnet_N").axes[0]
    assert ax.get_yscale() == "log" and "USD/kg" in ax.get_ylabel() and "month" in ax.get_xlabel()
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines() if line.get_label() in shocked.regions}
    assert list(lines) == list(shocked.regions)
    for r, region in enumerate(shocked.regions):
        np.testing.assert_array_equal(lines[region], recorded[:, p, r])
    assert len(ax.patches) >= 1  # CN's quota on Nd (in magnet_N) is shaded


def test_production_chart_shows_recorded_production_by_stage_and_region(shocked):
    e = shocked.elements.index("Nd")
    made = charts.history(shocked, "production")[-1] * shocked.chain.content[:, e, None]  # [P, R] t Nd oxide
    by_stage = charts.production_by_stage(shocked, "Nd")
    assert charts.stages(shocked) == ("concentrate", "oxide", "metal", "magnet")
    stage = np.array(shocked.product_stage)
    for s, name in enumerate(charts.stages(shocked)):
        np.testing.assert_allclose(by_stage[s], made[stage == name].sum(axis=0))
    # China mines, separates and makes most of the world's Nd in the base year.
    cn = shocked.regions.index("CN")
    assert (by_stage[:, cn] > 0.5 * by_stage.sum(axis=1)).all()
    ax = charts.production_figure(shocked, "Nd").axes[0]
    assert "t Nd oxide/month" in ax.get_ylabel()
    bars = {}
    for container in ax.containers:
        bars[container.get_label()] = [bar.get_height() for bar in container]
    assert set(bars) == {shocked.regions[r] for r in range(len(shocked.regions)) if by_stage[:, r].sum() > 0}
    for region, heights in bars.items():
        np.testing.assert_allclose(heights, by_stage[:, shocked.regions.index(region)])

    p = shocked.products.index("NdPr_metal")
    ax = charts.production_figure(shocked, "Nd", "NdPr_metal").axes[0]
    assert "t metal/month" in ax.get_ylabel() and "month" in ax.get_xlabel()
    stacked = ax.collections[0].get_paths()[0].vertices  # the first region's band: its top edge
    first = next(r for r in range(len(shocked.regions)) if charts.history(shocked, "production")[1:, p, r].sum() > 0)
    top = charts.history(shocked, "production")[1:, p, first]
    assert np.isclose(stacked[:, 1].max(), top.max())


def test_origin_chart_reads_import_dependency_from_the_recorded_origin_shares(shocked):
    """Each region's supply by origin per stage: the recorded ``product_origin``, weighted
    within a stage by what the region received of each product."""
    origin = charts.history(shocked, "product_origin")[-1]  # [P, to, origin]
    got = charts.received(shocked)
    imports = charts.history(shocked, "product_flow")[-1].sum(axis=1)  # [P, to]
    assert (got >= imports - 1e-6).all()  # what a region received includes its imports
    assert got[[p for p, s in enumerate(shocked.product_stage) if s == "magnet"]].sum() > 0

    shares = charts.origin_shares(shocked, "Dy")
    assert list(shares) == ["concentrate", "oxide", "metal", "magnet"]
    # One product carries Dy at the oxide and metal stages: its shares as recorded.
    # (a region whose buyers got none of it shows no bar, though its sellers' pool has a mix)
    for stage, product in (("oxide", "Dy_oxide"), ("metal", "DyFe_alloy")):
        p = shocked.products.index(product)
        received = got[p] > 0
        np.testing.assert_allclose(shares[stage][received], origin[p][received])
        assert (shares[stage][~received] == 0).all()
    # Magnets: the Dy-bearing grades, weighted by the Dy each region received in each.
    dy = shocked.elements.index("Dy")
    grades = [p for p, s in enumerate(shocked.product_stage) if s == "magnet" and shocked.chain.content[p, dy] > 0]
    weight = got[grades] * shocked.chain.content[grades, dy, None]
    eu = shocked.regions.index("EU")
    expected = (weight[:, eu, None] * origin[grades, eu]).sum(axis=0) / weight[:, eu].sum()
    np.testing.assert_allclose(shares["magnet"][eu], expected)
    for share in shares.values():
        assert (share >= -1e-12).all() and (share.sum(axis=1) <= 1 + 1e-9).all()
    cn = shocked.regions.index("CN")
    assert shares["magnet"][eu, cn] > 0.5  # the EU's magnets come mostly from China

    p = shocked.products.index("magnet_N")
    single = charts.origin_shares(shocked, "Nd", "magnet_N")
    assert list(single) == ["magnet"]
    np.testing.assert_array_equal(single["magnet"], origin[p])

    figure = charts.origin_figure(shocked, "Dy")
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(shares)
    magnet = panels[-1]
    cn_bars = next(c for c in magnet.containers if c.get_label() == "CN")
    widths = {round(bar.get_y() + bar.get_height() / 2): bar.get_width() for bar in cn_bars}  # row -> width
    for r in range(len(shocked.regions)):
        assert np.isclose(widths.get(r, 0.0), shares["magnet"][r, cn], atol=1e-4)
    assert f"{100 * shares['magnet'][eu, cn]:.0f}" in {t.get_text() for t in magnet.texts}
    assert "% of what the region received" in panels[-1].get_xlabel()
    assert len(charts.origin_figure(shocked, "Nd", "magnet_N").axes) == 1


def test_a_product_chosen_in_the_header_narrows_the_supply_chain_charts(shocked):
    assert app.chosen_product(shocked, "magnet_H") == "magnet_H"
    assert app.chosen_product(shocked, app.EVERY_PRODUCT) is None
    assert app.chosen_product(shocked, "no_such_product") is None  # e.g. after Reset to another base year


def test_status_says_what_runs_and_what_holds(shocked):
    lines = "\n".join(app.run_lines(shocked) + app.element_lines(shocked, "Nd"))
    assert "quota_shock (quota_shock.toml)" in lines
    assert "Levers: none" in lines
    assert "month 8 (Sep 2025)" in lines
    assert "export quota by CN" in lines
    assert "USD/kg" in lines and "t/month" in lines


# --------------------------------------------------------------------- the page, headless
def render_page():
    box, rc = solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)
    return rc


def images(rc) -> list[bytes]:
    return [bytes(w.value) for w in rc.find(ipywidgets.Image).widgets]


def header(rc) -> str:
    return " ".join(w.children[0] for w in rc.find(v.Html, tag="span").widgets if w.children and isinstance(w.children[0], str))


def click(rc, label: str) -> None:
    rc.find(v.Btn, children=[label]).widget.click()


def text_box(rc, label: str):
    return rc.find(v.TextField, label=label).widget


def test_page_shows_controls_charts_and_the_element_selector():
    rc = render_page()
    for label in ("Reset", "Step"):
        rc.find(v.Btn, children=[label]).assert_single()
    labels = {w.label for w in rc.find(v.TextField).widgets}
    assert {"Seed (blank: random)", "Quota cut 0-1 (blank: file's)", "Cut starts, month (blank: file's)",
            "Cut lasts, months (blank: file's)", "Tension volatility (blank: file's)"} <= labels
    select = rc.find(v.Select, label="Scenario (experiments/)").widget
    assert select.v_model == "baseline.toml" and "quota_shock.toml" in select.items
    assert [w.children[0] for w in rc.find(v.Btn).widgets if w.children and w.children[0] in ("Nd", "Dy")] == ["Nd", "Dy"]
    pictures = images(rc)
    assert len(pictures) == 9 and all(p.startswith(b"\x89PNG") for p in pictures)
    assert "month 0 (Jan 2025)" in header(rc)


def test_step_advances_the_month_and_redraws_the_charts():
    rc = render_page()
    before = images(rc)
    for _ in range(3):
        click(rc, "Step")
    assert "month 3 (Apr 2025)" in header(rc)
    after = images(rc)
    assert all(a != b for a, b in zip(before, after, strict=True))


def test_choosing_an_element_redraws_for_it():
    rc = render_page()
    click(rc, "Step")
    before = images(rc)
    rc.find(v.BtnToggle).widget.v_model = 2  # Dy
    assert "Dy world price" in header(rc)
    assert images(rc) != before


def test_choosing_a_product_redraws_the_supply_chain_charts_only():
    rc = render_page()
    click(rc, "Step")
    before = images(rc)
    select = rc.find(v.Select, label="Product").widget
    assert select.v_model == app.EVERY_PRODUCT and "magnet_N" in select.items
    select.v_model = "magnet_N"
    after = images(rc)
    assert after[:6] == before[:6]
    assert all(a != b for a, b in zip(before[6:], after[6:], strict=True))


def test_changed_controls_take_effect_on_reset():
    rc = render_page()
    click(rc, "Step")
    rc.find(v.Select, label="Scenario (experiments/)").widget.v_model = "quota_shock.toml"
    box = text_box(rc, "Quota cut 0-1 (blank: file's)")
    box.v_model = "0.6"
    box.fire_event("keyup.enter", None)
    start = text_box(rc, "Cut starts, month (blank: file's)")
    start.v_model = "1"
    start.fire_event("focusout", None)
    assert "quota_shock" not in header(rc)  # nothing changes before Reset
    click(rc, "Reset")
    text = header(rc)
    assert "Scenario: quota_shock (quota_shock.toml)" in text
    assert "Quota cut: 60 % of CN exports, months 1-" in text
    assert "month 0 (Jan 2025)" in text
    for _ in range(2):
        click(rc, "Step")
    assert "Nd this month: export quota by CN" in header(rc)


def test_a_refused_control_shows_a_warning_and_the_page_keeps_working():
    rc = render_page()
    box = text_box(rc, "Quota cut 0-1 (blank: file's)")
    box.v_model = "lots"
    box.fire_event("keyup.enter", None)
    click(rc, "Reset")
    warnings = [w for w in rc.find(v.Alert).widgets if "lots" in str(w.children)]
    assert len(warnings) == 1
    click(rc, "Step")
    assert "month 1 (Feb 2025)" in header(rc)


def test_each_session_has_its_own_model():
    first, second = render_page(), render_page()
    for _ in range(2):
        click(first, "Step")
    assert "month 2 (Mar 2025)" in header(first)
    assert "month 0 (Jan 2025)" in header(second)


# ------------------------------------------------------------------------ serving offline
def test_front_end_assets_are_installed_for_the_solara_in_use():
    """solara-assets must hold every bundle this solara's page (and Mesa's draggable chart
    grid) asks for, or the page stays blank without internet."""
    import solara.server
    import solara.widgets

    assert server.check_assets() is None
    template = (Path(solara.server.__file__).parent / "templates" / "solara.html.j2").read_text()
    grid = (Path(solara.widgets.__file__).parent / "vue" / "gridlayout.vue").read_text()
    bundles = set(re.findall(r"\{\{cdn\}\}/((?:@[\w-]+/)?[\w.-]+@[\w.-]+)/", template))
    bundles |= set(re.findall(r"getCdn\(\)\}/((?:@[\w-]+/)?[\w.-]+@[\w.-]+)/", grid))
    bundles = {b for b in bundles if "vuetify3" not in b}  # ipyvuetify 3 only, which we do not use
    assert {b.split("@")[-2].split("/")[-1] for b in bundles} >= {"solara-vuetify-app", "requirejs", "vue-grid-layout"}
    for bundle in bundles:
        assert (server.assets_directory() / bundle).is_dir(), bundle


def test_ree_viz_help_names_host_and_port():
    result = subprocess.run(
        [sys.executable, "-m", "abm.cli", "viz", "--help"], capture_output=True, text=True, check=True
    )
    assert "--host" in result.stdout and "--port" in result.stdout and "127.0.0.1" in result.stdout
