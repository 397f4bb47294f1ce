"""A Mesa agent that is one row of a population whose state lives in arrays
(``abm.agents.converter.Converters``, ``abm.agents.end_user.EndUsers``): the model steps
the arrays; the agent is the view the app, agent reporters and ``agents_by_type`` see."""

from __future__ import annotations

import mesa


class Row:
    """A read-only attribute of a ``Member``: its row of the population's array ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, member: Member | None, owner: type | None = None):
        if member is None:
            return self
        return getattr(member.population, self.name)[member.index]


class Member(mesa.Agent):
    """Row ``index`` of ``population`` (which has a ``region`` array of region indices):
    ``region_index`` and ``region`` (the region's code in ``model.regions``)."""

    def __init__(self, model: mesa.Model, population: object, index: int) -> None:
        super().__init__(model)
        self.population, self.index = population, index
        self.region_index = int(population.region[index])
        self.region = model.regions[self.region_index]
