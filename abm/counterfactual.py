"""What an exporter would export without its percentage cuts and licences: the
reference they are measured against.

A percentage export cut ``c`` caps exports at ``(1 - c)`` times this reference, and a
licence grants ``approval_share`` of the applications filed ``delay_months`` earlier,
an application being what buyers would have bought without the licence. The reference
is not a synthetic history nor a trailing mean frozen when the cut starts (which made
small cuts bite as exports grew): it is the run itself without them; a licence's applications are its flows to each destination. The month the first
percentage cut or licence takes effect, the model is forked (``copy.deepcopy``, no data
collection) into a counterfactual run whose export rules leave out every percentage cut,
every licence and every destination quota, and the announcements of those made from the
fork on (``abm.policy.export_rules(counterfactual=True)``; one announced with notice
before the fork moved both runs, so its stocking-up is in the reference);
it steps alongside while any of them stays in force, drawing the same random numbers, and
is dropped when none is. Up to the fork the two runs are one, so the reference is the
paired baseline's exports for a cut in a run without other cuts: a cut ``c`` lowers
exports by ``c`` against it, and a cut tending to 0 gives the baseline continuously.
A second episode after a gap forks again from the state the first left (its reference
is the run without the second, not the never-restricted baseline); where a tension cut is
already in force the strictest cut wins, so a shock adds less than its nominal share.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from abm.scenario import MAX_LICENCE_DELAY_MONTHS

if TYPE_CHECKING:
    from abm.model import RareEarthModel

# Months of references kept: the longest licence processing delay plus this month.
HISTORY_MONTHS = MAX_LICENCE_DELAY_MONTHS + 1


class CounterfactualExports:
    """The reference flows from every region to every region, [P, R, R] t per month (origin,
    destination; a region's reference exports are their sum over destinations), this
    month and before."""

    def __init__(self) -> None:
        self._run: RareEarthModel | None = None
        self._history: deque[np.ndarray] = deque(maxlen=HISTORY_MONTHS)  # oldest first, [P, R, R] each

    def this_month(self, model: RareEarthModel) -> np.ndarray:
        """[P, R, R] t each region would ship to each other this month without
        percentage cuts and licences. Call once a month, after ``model`` has drawn this month's tension and
        before it sets its export rules: forks the counterfactual run if there is none
        (it then finishes this month from ``model``'s state) or steps it one month."""
        if self._run is None:
            collector, model.datacollector = getattr(model, "datacollector", None), None
            run = copy.deepcopy(model)
            model.datacollector = collector
            run.counterfactual = None
            run.finish_counterfactual_fork()
            self._run = run
        else:
            self._run.advance_counterfactual()
        return self._run.product_flow

    @property
    def run(self) -> RareEarthModel | None:
        """The counterfactual run as it stands (after the last month it stepped), or None
        while none runs (no percentage cut or licence in force)."""
        return self._run

    def stop(self) -> None:
        """No percentage cut or licence is in force: drop the counterfactual run (the next
        one forks from the state of that month)."""
        self._run = None

    def record(self, flows: np.ndarray) -> None:
        """Keep this month's reference [P, R, R]: the counterfactual's flows while it runs,
        the actual flows otherwise (then nothing they are measured against is in force)."""
        self._history.append(flows.copy())

    def months_ago(self, months: int) -> np.ndarray | None:
        """[P, R, R] the reference ``months`` (>= 1) ago, or None before the run kept it."""
        return self._history[-months] if months <= len(self._history) else None
