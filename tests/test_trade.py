"""Trade rules product by product, contract deliveries, provenance and proportional
allocation, against closed-form cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abm.chain import build_chain
from abm.data import load_calibration
from abm.data.chain import load_supply_chain
from abm.policy import ExportRules
from abm.trade import deliver_contracts, element_reach, product_rules, prorata_fill, provenance

INF = np.inf


def test_single_source_shortage_is_shared_pro_rata():
    flow = prorata_fill(np.array([6.0]), np.array([4.0, 8.0]), np.full((1, 2), INF))
    assert flow == pytest.approx(np.array([[2.0, 4.0]]))


def test_surplus_serves_every_sink_in_full():
    flow = prorata_fill(np.array([20.0]), np.array([4.0, 8.0]), np.full((1, 2), INF))
    assert flow.sum(axis=0) == pytest.approx([4.0, 8.0])


def test_closed_link_carries_nothing_and_others_serve_the_sink():
    links = np.array([[0.0, INF], [INF, INF]])  # source 0 cannot reach sink 0
    flow = prorata_fill(np.array([10.0, 10.0]), np.array([5.0, 5.0]), links)
    assert flow[0, 0] == 0.0
    assert flow.sum(axis=0) == pytest.approx([5.0, 5.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 100), min_size=1, max_size=4),
    st.lists(st.floats(0, 100), min_size=1, max_size=5),
    st.data(),
)
def test_flows_respect_supply_demand_and_links(supply, demand, data):
    supply, demand = np.array(supply), np.array(demand)
    caps = np.array(
        data.draw(st.lists(st.lists(st.sampled_from([0.0, 3.0, INF]), min_size=len(demand), max_size=len(demand)),
                           min_size=len(supply), max_size=len(supply)))
    )
    flow = prorata_fill(supply, demand, caps)
    assert (flow >= 0).all()
    assert (flow.sum(axis=1) <= supply + 1e-9).all()
    assert (flow.sum(axis=0) <= demand + 1e-9).all()
    assert (flow <= caps + 1e-9).all()


CHAIN = build_chain(load_supply_chain(), load_calibration())
ELEMENTS = load_calibration().elements


def test_contracts_are_served_at_home_first_and_abroad_within_the_export_cap():
    # one product, origin 0 holds 10 t; 6 t due at home, 6 t due abroad; export cap 3 t
    volume = np.zeros((1, 2, 2))
    volume[0, 0, 0], volume[0, 0, 1] = 6.0, 6.0
    open_link = np.ones((1, 2, 2), dtype=bool)
    flow = deliver_contracts(volume, np.array([[10.0, 0.0]]), np.array([[3.0, INF]]), open_link)
    assert flow[0, 0, 0] == 6.0 and flow[0, 0, 1] == 3.0
    closed = open_link.copy()
    closed[0, 0, 1] = False
    assert deliver_contracts(volume, np.array([[10.0, 0.0]]), np.array([[INF, INF]]), closed)[0, 0, 1] == 0.0


def test_a_rule_on_an_element_reaches_every_product_that_carries_enough_of_it():
    reach = element_reach(CHAIN)
    products, dy = CHAIN.products, ELEMENTS.index("Dy")
    reached = {p for p, r in zip(products, reach[:, dy], strict=True) if r}
    assert "Dy_oxide" in reached and "DyFe_alloy" in reached
    assert "magnet_N" not in reached and "Nd_oxide" not in reached
    assert any(p.startswith("magnet_") for p in reached)
    assert "conc_bayan_obo" not in reached  # a trace of Dy is not a Dy product


def test_element_rules_become_product_rules():
    n_r, n_e = 3, len(ELEMENTS)
    cut = np.zeros((n_r, n_e))
    cut[0, ELEMENTS.index("Dy")] = 0.4
    banned = np.zeros((n_r, n_e, n_r), dtype=bool)
    banned[0, ELEMENTS.index("Tb"), 2] = True
    tax = np.zeros((n_r, n_e))
    tax[0, ELEMENTS.index("Dy")] = 0.25
    rules = ExportRules(quota_cut=cut, banned=banned, outage=np.zeros((n_r, 4)), tonnage_quotas=(), export_tax=tax,
                         licences=(), announced=np.zeros(0), re_export_banned=np.zeros((n_r, n_e), dtype=bool))
    reach = element_reach(CHAIN)
    taxed = np.isin(np.array(CHAIN.data.stage), ("oxide", "metal"))
    product = product_rules(rules, reach, taxed, np.array(CHAIN.data.stage))
    index = {p: i for i, p in enumerate(CHAIN.products)}
    assert product.quota_cut[0, index["Dy_oxide"]] == 0.4 and product.quota_cut[0, index["Nd_oxide"]] == 0.0
    assert product.banned[0, index["Tb_metal"], 2] and not product.banned[0, index["Tb_metal"], 1]
    assert product.export_tax[0, index["DyFe_alloy"]] == 0.25
    magnets_with_dy = [i for p, i in index.items() if p.startswith("magnet_") and reach[i, ELEMENTS.index("Dy")]]
    assert all(product.export_tax[0, i] == 0.0 for i in magnets_with_dy)  # magnets were not taxed


def test_a_re_export_keeps_its_maker():
    # region 0 makes and sells 10 t: 4 t at home and 6 t to region 1, which re-exports 4 t to region 2
    sold = np.array([[10.0, 0.0, 0.0]])
    flow = np.zeros((1, 3, 3))
    flow[0, 0, 1], flow[0, 1, 2] = 6.0, 4.0
    mix = provenance(sold, flow)
    assert mix[0, 2, 0] == pytest.approx(1.0) and mix[0, 1, 0] == pytest.approx(1.0)
    assert mix[0, 0, 0] == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_region_that_had_anything_traces_all_of_it_to_makers(seed):
    """A region that exports all it makes (Malaysia's oxide) passes its mix on in full:
    every region's origin shares add up to 1, and each mix is its pool's."""
    rng = np.random.default_rng(seed)
    n = 5
    sold = rng.uniform(0, 10, (2, n)) * (rng.random((2, n)) < 0.7)
    # shipments go one way along the regions (a -> b only for a < b), re-exports included:
    # product cannot go round a loop of regions that make none of it
    flow = rng.uniform(0, 5, (2, n, n)) * (rng.random((2, n, n)) < 0.4) * np.triu(np.ones((n, n)), 1)[None]
    for _ in range(50):  # no region ships more than it had: scale its exports down
        pool = sold + flow.sum(axis=1)
        out = flow.sum(axis=2)
        flow *= np.where(out > pool, pool / np.where(out > 0, out, 1.0), 1.0)[:, :, None]
    flow *= 1 - 1e-9
    mix = provenance(sold, flow)
    had = sold + flow.sum(axis=1) > 0
    assert mix.sum(axis=2)[had] == pytest.approx(1.0, rel=1e-9)
    assert (mix.sum(axis=2)[~had] == 0).all()
    pooled = sold[:, :, None] * np.eye(n)[None] + np.einsum("pab,pao->pbo", flow, mix)
    assert (mix * (sold + flow.sum(axis=1))[:, :, None]) == pytest.approx(pooled, rel=1e-9, abs=1e-9)
