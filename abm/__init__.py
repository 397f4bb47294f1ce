"""rare-earth-abm: an agent-based model of the global rare earth supply chain under trade policy.

The public API: ``RareEarthModel`` (a Mesa model), ``Scenario`` and ``load_scenario``
(typed, validated inputs), ``run_scenario`` (one run to tidy tables and metrics),
``evaluate`` (one run as a function of keyword parameters, for EMA Workbench or SALib).
"""

from abm.model import RareEarthModel
from abm.run import RunResult, evaluate, run_scenario
from abm.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["RareEarthModel", "RunResult", "Scenario", "ScenarioError", "evaluate", "load_scenario", "run_scenario"]
