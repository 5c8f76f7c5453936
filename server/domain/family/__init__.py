"""亲情账户 (family accounts): a binder adds a family member through an application, then
shows the member's dynamic 医保码 and follows their spending (SPEC.md, issue #3).

One service, ``FamilyService`` (``keys.family_key``), built from one part per room;
every part shares ``base.FamilyBase`` (the injected resources, the clock, the limits).
Where things live:

==================  =====================================================================
``states``          application states, the allowed moves, their labels, ``step``
``base``            the service's resources and clock, ``Limits``, the owned look-ups
``facts``           what the policy decides on: registry match, binder, limit counts
``applications``    create / read / list applications; ``application_view`` (API output)
``materials``       uploads (streamed to storage), attach, read back; storage refusals
``commitment``      the 个人承诺书: current text, signing, whether a signature is current
``submit``          precheck, submit under row locks, the reviewer's approve / reject
``members``         after binding: members, binders, unbind, 医保码, spending
``queries``         the area's hot reads (pre-built SQL), each tested on both databases
``service``         ``FamilyService``, all parts together
==================  =====================================================================

A new use case goes into the part of its room (a new state: ``states``; a new rule:
the policy engine, with its fact gathered in ``facts``).
"""

from __future__ import annotations

from server.domain.family.base import Limits
from server.domain.family.service import FamilyService

__all__ = ["FamilyService", "Limits"]
