"""家庭共济 attempts the rules refused, kept so the bot can explain them (issue 11 point 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.users import User


class MutualAidRefusal(Model):
    """One refused 家庭共济 request of a user: which action, the reason code and the message
    they were shown, and when. Nothing about the relative is kept (no name, no ID): the
    bot needs only the reason, and a refused request is no reason to hold their data."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="mutual_aid_refusals", on_delete=fields.CASCADE
    )
    user_id: int
    action = fields.CharField(max_length=16)  # authorize | revoke
    code = fields.CharField(max_length=40)
    message = fields.CharField(max_length=200)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "mutual_aid_refusals"
        indexes = (("user_id", "at"),)
