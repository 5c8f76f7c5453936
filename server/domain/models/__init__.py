"""Tortoise models, one module per area; Tortoise discovers them through this package.

All personal data columns end in ``_enc`` (AES-GCM, see ``server.domain.pii``) with a
``_hash`` blind index where the value must be looked up or kept unique.
"""

from server.domain.models.family import (
    Application,
    ApplicationEvent,
    Binding,
    CommitmentSignature,
    Material,
)
from server.domain.models.money import (
    Account,
    Authorization,
    Institution,
    LedgerEntry,
    Settlement,
)
from server.domain.models.notices import Notice, OfficialFollower, SubscriptionGrant
from server.domain.models.refusals import MutualAidRefusal
from server.domain.models.registry import InsuredPerson
from server.domain.models.staff import Staff, StaffAuditEntry
from server.domain.models.users import User

__all__ = [
    "Account",
    "Application",
    "ApplicationEvent",
    "Authorization",
    "Binding",
    "CommitmentSignature",
    "InsuredPerson",
    "Institution",
    "LedgerEntry",
    "Material",
    "MutualAidRefusal",
    "Notice",
    "OfficialFollower",
    "Settlement",
    "Staff",
    "StaffAuditEntry",
    "SubscriptionGrant",
    "User",
]
