"""``FamilyService``: the 亲情账户 use cases as one service (one per app, resources and the
clock injected — ``base.FamilyBase``), put together from its rooms."""

from __future__ import annotations

from server.domain.family.applications import ApplicationsPart
from server.domain.family.commitment import CommitmentPart
from server.domain.family.materials import MaterialsPart
from server.domain.family.members import MembersPart
from server.domain.family.submit import SubmitPart


class FamilyService(ApplicationsPart, MaterialsPart, CommitmentPart, SubmitPart, MembersPart):
    """The 亲情账户 use cases (``keys.family_key``); each part is one room of the package."""


__all__ = ["FamilyService"]
