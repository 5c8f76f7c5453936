"""Binder real-name verification (实名认证), POST /api/v1/me/realname.

Rule (SPEC.md verification; seed 000 "绑定人未完成实名认证"): a binder must be
real-name verified with an activated own 医保电子凭证 before adding family members.
Verification here means, in this order:

1. the ID document is well formed (``INVALID_ID_NUMBER``);
2. name + ID match the insurance registry (``INFO_MISMATCH``);
3. the face check (人脸核身) through the face gateway passes (``FACE_CHECK_FAILED``);
   a face service that is down answers ``SYSTEM_BUSY`` and changes nothing;
4. the person's own 医保电子凭证 is activated (``BINDER_NOT_VERIFIED``, whose fix says
   how to activate it);
5. no other mini-program user is already verified as that person
   (``IDENTITY_IN_USE``).

Then the user is linked to the registry person and their name / ID are kept encrypted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tortoise.transactions import in_transaction

from server.domain import reasons
from server.domain.errors import DomainError
from server.domain.identity import parse_id
from server.domain.models import User
from server.domain.pii import PiiCipher
from server.domain.registry import id_hash
from server.domain.users import profile
from server.gateways.face import FaceGateway
from server.gateways.registry import RegistryGateway, match


async def verify_realname(
    user_id: int,
    *,
    name: str,
    id_type: str,
    id_number: str,
    face_token: str,
    registry: RegistryGateway,
    face: FaceGateway,
    pii: PiiCipher,
    today: date,
) -> dict[str, Any]:
    """Verify the user as the insured person holding this ID; returns their profile."""
    doc = parse_id(id_type, id_number, today=today)
    result, record = await match(registry, id_type=doc.id_type, id_number=doc.id_number, name=name)
    if result != "match" or record is None:
        raise reasons.error("INFO_MISMATCH")
    if not await face.verify(face_token, id_number=doc.id_number, name=name):
        err = reasons.error("FACE_CHECK_FAILED")
        err.message = "人脸核验未通过,请本人正对手机摄像头重新完成人脸识别。"
        err.fields = {"face_token": "FACE_CHECK_FAILED"}
        raise err
    if not record.voucher_activated:
        err = reasons.error("BINDER_NOT_VERIFIED")
        err.message = "您本人的医保电子凭证尚未激活,暂不能完成实名认证。"
        raise err

    hashed = id_hash(pii, doc.id_type, doc.id_number)
    async with in_transaction():
        user = await User.filter(id=user_id).select_for_update().first()
        if user is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录", 401)
        taken = (
            await User.filter(person_id=record.person_id, realname_verified=True)
            .exclude(id=user_id)
            .exists()
        )
        if taken:
            raise DomainError(
                "IDENTITY_IN_USE",
                "该身份已由另一个微信账号完成实名认证;如非本人操作,请联系当地医保经办机构。",
                409,
            )
        user.realname_verified = True
        user.realname_verified_at = datetime.now(UTC)
        user.name_enc = pii.encrypt(name, purpose="name")
        user.id_type = doc.id_type
        user.id_number_enc = pii.encrypt(doc.id_number, purpose="id_number")
        user.id_hash = hashed
        user.person_id = record.person_id
        await user.save()
    return await profile(user_id, pii=pii)
