"""The agent types; each is a Mesa ``Agent`` held in the model's ``agents_by_type``."""

from abm.agents.converter import Converter
from abm.agents.end_user import EndUser
from abm.agents.nation import ExportingNation
from abm.agents.recycler import Recycler
from abm.agents.stockpile import StateReserve, StrategicStockpile

__all__ = ["Converter", "EndUser", "ExportingNation", "Recycler", "StateReserve", "StrategicStockpile"]
