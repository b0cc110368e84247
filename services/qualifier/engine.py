"""The port every qualification engine implements (rules now, Claude later)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from schemas.leads import LeadToQualify
from schemas.qualification import Qualification


class QualificationEngine(ABC):
    """Turns what a lead wrote into a Qualification; the worker never knows which engine runs."""

    name: str
    #: Qualifying calls a paid API: a redelivered event is looked up before it is qualified
    #: again (EventLedger.handle_once's look_first); a free engine qualifies and claims at once.
    costly: bool = False

    @abstractmethod
    async def qualify(self, lead: LeadToQualify) -> Qualification:
        """Qualify one lead. Must not raise for odd input: unknowns are answers too."""
