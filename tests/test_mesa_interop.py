"""RareEarthModel behaves as any Mesa model: mesa.batch_run builds it from plain keywords."""

import mesa
import numpy as np

from abm import RareEarthModel


def test_batch_run_sweeps_model_keywords_and_stops_at_the_horizon():
    rows = mesa.batch_run(
        RareEarthModel,
        parameters={"quota_cut": [0.0, 0.6], "shock_start": 2, "shock_months": 10, "horizon_months": 12},
        rng=[3],
        max_steps=500,
        display_progress=False,
    )
    assert len(rows) == 2
    assert all(row["Step"] == 12 for row in rows)
    by_cut = {row["quota_cut"]: row for row in rows}
    world = -1  # the last price zone is the world market
    assert np.all(by_cut[0.6]["price"][:, world] > by_cut[0.0]["price"][:, world])


def test_agents_are_grouped_by_type():
    model = RareEarthModel(rng=1, horizon_months=1)
    types = {cls.__name__: len(agents) for cls, agents in model.agents_by_type.items()}
    assert types["ExportingNation"] == 7  # nations that mine or separate
    assert types["Converter"] == len(model.converters) and types["EndUser"] == len(model.end_users)
    assert set(model.converters.stage) == {"oxide", "metal", "magnet"}  # separation, metal and magnet plants
    assert types["EndUser"] >= 15 and types["Recycler"] >= 3
