"""rare-earth-abm: an agent-based model of the global rare earth supply chain under trade policy.

The public API: ``RareEarthModel`` (a Mesa model), ``Scenario`` and ``load_scenario``
(typed, validated inputs), ``run_scenario`` (one run to tidy tables and metrics).
"""

from abm.model import RareEarthModel
from abm.run import RunResult, run_scenario
from abm.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["RareEarthModel", "RunResult", "Scenario", "ScenarioError", "load_scenario", "run_scenario"]
