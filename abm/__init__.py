"""rare-earth-abm: an agent-based model of the global rare earth supply chain under trade policy.

The public API: ``RareEarthModel`` (a Mesa model), ``Scenario`` and ``load_scenario``
(typed, validated inputs), ``run_scenario`` (one run to tidy tables and metrics),
``evaluate`` (one run as a function of keyword parameters and a seed, for EMA Workbench
or SALib) and ``outcome_names`` (the outcomes it returns, to declare), ``label_batch_run``
(``mesa.batch_run`` rows as the tidy table of ``run_scenario``).

Names are imported on first use, so ``import abm.scenario`` (what ``ree check`` needs)
does not pay for importing Mesa.
"""

from abm.lazy import lazy_namespace

# Each public name and the module that defines it.
_PUBLIC = {
    "RareEarthModel": "abm.model",
    "RunResult": "abm.run",
    "evaluate": "abm.run",
    "label_batch_run": "abm.run",
    "outcome_names": "abm.run",
    "run_scenario": "abm.run",
    "Scenario": "abm.scenario",
    "ScenarioError": "abm.scenario",
    "load_scenario": "abm.scenario",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_namespace("abm", globals(), _PUBLIC)
