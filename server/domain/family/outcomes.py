"""What happens around a binding's effect: the member's voucher activated on their behalf
(代激活), and the notices that tell the binder and the member (issue #11).

* 代激活 (SPEC.md "activation on the member's behalf"): binding a member whose 医保电子凭证
  is not activated activates it — the registry flag, and an append-only
  ``VoucherActivation`` row saying who, through which application, how and when.
* Notices, written in the caller's transaction like the settlement notices
  (``notices_outbox``) and delivered by the push worker: ``binding_result`` to the binder
  (approved / rejected / correction requested — the bot promises it), ``member_bound`` /
  ``member_unbound`` to the member when they use WeChat (a verified mini-program user who
  is that person): their medical spending becomes visible to that binder (SPEC.md "the
  member is told").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final, Literal, cast

from server.domain import notices_outbox
from server.domain.clock import cn_iso
from server.domain.models import (
    Application,
    Binding,
    InsuredPerson,
    Notice,
    User,
    VoucherActivation,
)
from server.domain.pii import PiiCipher, mask_name
from server.domain.policy import RELATIONSHIP_LABELS

BINDING_RESULT = "binding_result"
MEMBER_BOUND: Final = "member_bound"
MEMBER_UNBOUND: Final = "member_unbound"
TITLES = {
    BINDING_RESULT: "亲情账户审核结果通知",
    MEMBER_BOUND: "亲情账户绑定通知",
    MEMBER_UNBOUND: "亲情账户解绑通知",
}
RESULT_LABELS = {
    "approved": "审核通过,已绑定",
    "rejected": "审核未通过",
    "correction_requested": "需补正材料后重新提交",
}


async def activate_voucher(
    member_id: int,
    *,
    by_user: int | None,
    application_id: uuid.UUID | None,
    method: Literal["face", "documents", "guardian", "counter"],
    now: datetime,
    staff: str | None = None,
) -> None:
    """代激活: the member's voucher is activated now, and who did it is recorded."""
    await InsuredPerson.filter(id=member_id).update(voucher_activated=True)
    await VoucherActivation.create(
        person_id=member_id,
        activated_by_id=by_user,
        application_id=application_id,
        staff=staff,
        method=method,
        activated_at=now,
    )


def _names(pii: PiiCipher, app: Application) -> str:
    return mask_name(pii.decrypt(app.member_name_enc, purpose="name"))


async def binding_result(
    pii: PiiCipher,
    app: Application,
    *,
    outcome: Literal["approved", "rejected", "correction_requested"],
    reason: str,
    now: datetime,
) -> None:
    """The reviewer's decision, to the binder."""
    await notices_outbox.save(
        [
            Notice(
                recipient_id=app.binder_id,
                kind=BINDING_RESULT,
                dedupe_key=f"{BINDING_RESULT}:{app.id}:{outcome}:{int(now.timestamp() * 1000)}",
                title=TITLES[BINDING_RESULT],
                data={
                    "member_name": _names(pii, app),
                    "relationship": RELATIONSHIP_LABELS.get(app.relationship, app.relationship),
                    "result": RESULT_LABELS[outcome],
                    "outcome": outcome,
                    "reason": reason or "无",
                    "application_id": str(app.id),
                    "decided_at": cn_iso(now),
                },
                state="pending",
            )
        ]
    )


async def _member_user(member_id: int) -> int | None:
    """The mini-program user who is this insured person, if they use WeChat."""
    ids = await User.filter(person_id=member_id, realname_verified=True).values_list(
        "id", flat=True
    )
    return int(cast(int, ids[0])) if ids else None


async def member_told(
    pii: PiiCipher,
    binding: Binding,
    *,
    kind: Literal["member_bound", "member_unbound"],
    now: datetime,
) -> None:
    """Tell the member someone bound / unbound them (when the member uses WeChat)."""
    recipient = await _member_user(binding.member_id)
    if recipient is None or recipient == binding.binder_id:
        return
    binder = await User.get(id=binding.binder_id).only("id", "name_enc")
    binder_name = (
        mask_name(pii.decrypt(binder.name_enc, purpose="name")) if binder.name_enc else "您的家人"
    )
    await notices_outbox.save(
        [
            Notice(
                recipient_id=recipient,
                kind=kind,
                dedupe_key=f"{kind}:{binding.id}",
                title=TITLES[kind],
                data={
                    "binder_name": binder_name,
                    "relationship": RELATIONSHIP_LABELS.get(
                        binding.relationship, binding.relationship
                    ),
                    "at": cn_iso(now),
                    "binding_id": str(binding.id),
                },
                state="pending",
            )
        ]
    )


__all__ = [
    "BINDING_RESULT",
    "MEMBER_BOUND",
    "MEMBER_UNBOUND",
    "activate_voucher",
    "binding_result",
    "member_told",
]
