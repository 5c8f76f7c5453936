"""Binder real-name verification (实名认证), POST /api/v1/me/realname.

Rule (SPEC.md verification; seed 000 "绑定人未完成实名认证"): a binder must be
real-name verified with an activated own 医保电子凭证 before adding family members.
Verification here means, in this order:

1. the ID document is well formed (``INVALID_ID_NUMBER``);
2. a user already verified stays who they are: verifying again as someone else is
   ``REALNAME_ALREADY_VERIFIED`` (issue #17 finding 3);
3. one unit of the identity-guessing budget is spent (``RATE_LIMITED`` beyond it);
4. the face check (WeChat 人脸核身, ``FaceService``) passes for this person on the
   caller's own phone (``FACE_CHECK_FAILED``); WeChat that cannot answer gives
   ``SYSTEM_BUSY`` and changes nothing. It comes
   *before* the registry: otherwise a bad face token told a registered name + ID
   (``FACE_CHECK_FAILED``) from an unknown one (``INFO_MISMATCH``) — an oracle;
5. name + ID match the insurance registry (``INFO_MISMATCH``);
6. the person's own 医保电子凭证 is activated (``BINDER_NOT_VERIFIED``, whose fix says
   how to activate it);
7. no other mini-program user is verified as that person (``IDENTITY_IN_USE``), enforced
   by the unique index on ``users.id_hash`` so concurrent attempts cannot both pass. An
   account the counter made for the person (窗口代办, ``server.domain.counter_accounts``)
   is no other user: this one adopts it (its bindings, applications, authorizations).

Then the user is linked to the registry person and their name / ID are kept encrypted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain import counter_accounts, reasons
from server.domain.clock import Clock, cn_today, utc_now
from server.domain.errors import DomainError
from server.domain.guessing import GuessBudget
from server.domain.identity import parse_id
from server.domain.models import User
from server.domain.pii import PiiCipher
from server.domain.registry import Registry, id_hash, match
from server.domain.users import profile

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.face_check import FaceService
    from server.privacy.consent import ConsentService


class RealnameService:
    """Real-name verification (``keys.realname_key``); resources and the clock injected."""

    def __init__(
        self,
        *,
        registry: Registry,
        face: FaceService,
        pii: PiiCipher,
        redis: Redis,
        guesses: GuessBudget | None = None,
        clock: Clock | None = None,
        consents: ConsentService | None = None,
    ) -> None:
        from server.privacy.consent import ConsentService

        self.registry = registry
        self.face = face
        self.pii = pii
        self.redis = redis
        self.guesses = guesses or GuessBudget()
        self.clock: Clock = clock or utc_now
        self.consents = consents or ConsentService()  # the face check needs its consent

    async def verify(
        self,
        user_id: int,
        *,
        name: str,
        id_type: str,
        id_number: str,
        face_token: str,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Verify the user as the insured person holding this ID; returns their profile.
        The face check needs the user's consent to ``face`` first (403 CONSENT_REQUIRED,
        PIPL art. 29 and the 2025 face rules: nothing is checked or counted without it)."""
        await self.consents.require(user_id, "face")
        now = self.clock()
        pii = self.pii
        doc = parse_id(id_type, id_number, today=cn_today(now))
        hashed = id_hash(pii, doc.id_type, doc.id_number)
        current = await User.get_or_none(id=user_id).only("id", "realname_verified", "id_hash")
        if current is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
        if current.realname_verified and current.id_hash != hashed:
            raise DomainError(
                "REALNAME_ALREADY_VERIFIED",
                "您已以本人身份完成实名认证,不能再认证为其他人。",
            )
        await self.guesses.spend(self.redis, user_id=user_id, ip=ip)
        if not await self.face.check(
            user_id, face_token, name=name, id_number=doc.id_number, purpose="realname"
        ):
            err = reasons.error("FACE_CHECK_FAILED")
            err.message = "人脸核验未通过,请本人正对手机摄像头重新完成人脸识别。"
            err.fields = {"face_token": "FACE_CHECK_FAILED"}
            raise err
        result, record = await match(
            self.registry, pii, id_type=doc.id_type, id_number=doc.id_number, name=name
        )
        if result != "match" or record is None:
            raise reasons.error("INFO_MISMATCH")
        if not record.voucher_activated:
            err = reasons.error("BINDER_NOT_VERIFIED")
            err.message = "您本人的医保电子凭证尚未激活,暂不能完成实名认证。"
            raise err

        try:
            await _link(
                user_id,
                record.person_id,
                name=name,
                doc_type=doc.id_type,
                doc_number=doc.id_number,
                hashed=hashed,
                pii=pii,
                now=now,
            )
        except IntegrityError:
            raise _identity_in_use() from None
        return await profile(user_id, pii=pii)


def _identity_in_use() -> DomainError:
    return DomainError(
        "IDENTITY_IN_USE",
        "该身份已由另一个微信账号完成实名认证;如非本人操作,请联系当地医保经办机构。",
    )


async def _link(
    user_id: int,
    person_id: int,
    *,
    name: str,
    doc_type: str,
    doc_number: str,
    hashed: str,
    pii: PiiCipher,
    now: datetime,
) -> None:
    """Link the user to the registry person (the unique index decides a race)."""
    async with in_transaction():
        user = await User.filter(id=user_id).select_for_update().first()
        if user is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
        holder = await User.filter(id_hash=hashed).exclude(id=user_id).select_for_update().first()
        if holder is not None:
            if not counter_accounts.is_counter_account(holder.openid):
                raise _identity_in_use()
            # made at the counter for this person (窗口代办): this account takes it over
            await counter_accounts.adopt(holder, into=user_id)
        user.realname_verified = True
        user.realname_verified_at = now
        user.name_enc = pii.encrypt(name, purpose="name")
        user.id_type = doc_type
        user.id_number_enc = pii.encrypt(doc_number, purpose="id_number")
        user.id_hash = hashed
        user.person_id = person_id
        await user.save()
