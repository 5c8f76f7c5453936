"""The one catalogue of binding (亲情账户) and authorization (家庭共济) failure reasons.

The API records the code of a failed attempt, the precheck lists the blockers, and the bot
explains them — all from this table, so they never word the same reason differently.
Each entry says what happened (``message``) and what to do (``fix``), in Simplified
Chinese, from the seeds (mainly seed 000 "医保亲情账号绑定不了什么原因") and SPEC.md.

Messages may contain ``{placeholders}``; every placeholder has a default in ``defaults``
so ``reason(code)`` always works, and callers pass the real values (the policy's limit,
the allowed relationships, a date) as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from types import MappingProxyType
from typing import Any, Literal

from server.domain.errors import DomainError

Feature = Literal["binding", "mutual_aid", "common"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True)
class Reason:
    """A failure reason: its code, what happened, and the concrete fix (the HTTP status of
    each code is the HTTP layer's: server/http_errors.py)."""

    code: str
    message: str
    fix: str
    feature: Feature = "common"
    # The request field at fault (API.md: ``fields`` maps field → code).
    field: str | None = None
    defaults: Mapping[str, Any] = dc_field(default_factory=_empty, compare=False, hash=False)
    # Seconds after which trying again may succeed (SYSTEM_BUSY).
    retry_after: int | None = None

    def formatted(self, **fmt: Any) -> Reason:
        values = {**self.defaults, **fmt}
        return replace(
            self,
            message=self.message.format_map(values),
            fix=self.fix.format_map(values),
            defaults=_EMPTY,
        )


def _r(
    code: str,
    message: str,
    fix: str,
    *,
    feature: Feature = "common",
    field: str | None = None,
    retry_after: int | None = None,
    **defaults: Any,
) -> Reason:
    return Reason(code, message, fix, feature, field, MappingProxyType(dict(defaults)), retry_after)


RELATIONSHIP_HINT_BINDING = (
    "亲情账户只能绑定配偶、父母、子女;未满16周岁的孩子须由监护人以「子女」关系绑定;"
    "孙子女等可由其父母(您的子女)绑定。如需共用个人账户余额,请了解「家庭共济」。"
)
RELATIONSHIP_HINT_MUTUAL_AID = (
    "家庭共济可授权的近亲属范围由授权人参保地规定,各地开通近亲属(兄弟姐妹、祖父母、"
    "外祖父母、孙子女、外孙子女)的时间不同;请选择当地已开通的关系,或由其他符合条件的"
    "家人授权。"
)

_CATALOGUE: tuple[Reason, ...] = (
    # --- 亲情账户 binding: API.md's binding failure codes --------------------------------
    _r(
        "BINDER_NOT_VERIFIED",
        "您尚未完成实名认证,暂不能添加家庭成员。",
        "请先在微信(或支付宝)绑定本人银行卡完成实名认证,再激活本人的医保电子凭证"
        "(人脸识别),然后重新添加家人。",
        feature="binding",
    ),
    _r(
        "INVALID_ID_NUMBER",
        "被绑定人的证件号码格式不正确或校验未通过。",
        "请对照证件逐位核对号码:居民身份证为18位,最后一位可能是字母X;"
        "未满16周岁且没有身份证的孩子可选择出生医学证明。",
        field="id_number",
    ),
    _r(
        "RELATIONSHIP_NOT_ALLOWED",
        "所选关系「{relationship}」不在允许范围内,可选:{allowed}。",
        "{hint}",
        field="relationship",
        relationship="所选关系",
        allowed="配偶、父母、子女",
        hint=RELATIONSHIP_HINT_BINDING,
    ),
    _r(
        "INFO_MISMATCH",
        "填写的姓名、证件号码或手机号与医保参保登记信息不一致。",
        "请对照证件核对被绑定人的姓名(含生僻字)、证件号码和手机号,修改后重新提交;"
        "如参保登记信息本身有误,请被绑定人到参保地医保经办机构更正。",
        field="id_number",
    ),
    _r(
        "MEMBER_NOT_INSURED",
        "该家人未参保或参保状态异常(暂停、中断),暂不能绑定。",
        "请先确认家人已参加职工医保或城乡居民医保并正常缴费(职工医保可为近亲属代缴"
        "居民医保);参保恢复后再绑定。",
    ),
    _r(
        "MEMBER_NOT_ACTIVATED",
        "被绑定人尚未实名或医保电子凭证未激活。",
        "请先帮家人在国家医保服务平台App、微信或支付宝的「医保电子凭证」中完成实名认证"
        "并激活医保电子凭证,然后重新绑定。",
        feature="binding",
    ),
    _r(
        "ALREADY_BOUND",
        "该家人已在您的亲情账户中(已绑定或正在审核),无需重复添加。",
        "请在「我的家庭成员」中查看;如需重新绑定,请先解除原绑定。",
        feature="binding",
    ),
    _r(
        "MEMBER_LIMIT_REACHED",
        "您的亲情账户已有{limit}名家庭成员(含审核中),已达上限。",
        "每个绑定人最多绑定{limit}名家庭成员。如需添加,请先在「我的家庭成员」中解除一位。",
        feature="binding",
        limit=5,
    ),
    _r(
        "MONTHLY_BINDER_LIMIT",
        "该家人本月已被{limit}位绑定人绑定,已达上限。",
        "每位家庭成员一个自然月内最多被{limit}位绑定人绑定{slot_note}。"
        "请于{next_month}再试,或请已绑定的家人代为办理。",
        feature="binding",
        limit=2,
        next_month="下个自然月",
        slot_note=",本月内已解除的绑定仍占名额",
    ),
    _r(
        "MINOR_DOCUMENTS_MISSING",
        "未满{minor_age}周岁的家人需要上传出生医学证明或户口本。",
        "请由监护人(父母)以「子女」关系绑定,并上传孩子的出生医学证明,或包含监护人和"
        "孩子的户口本页;也可上传亲属关系公证书(需人工审核)。",
        feature="binding",
        minor_age=16,
    ),
    _r(
        "MATERIALS_MISSING",
        "还缺少必需的材料:{missing}。",
        "请在申请中上传清晰的材料图片(JPG、PNG或PDF),全部上传后再提交。",
        feature="binding",
        missing="证件或户口本图片",
    ),
    _r(
        "FACE_CHECK_FAILED",
        "被绑定人的人脸核验未完成或未通过。",
        "请让家人本人在场,在光线充足处摘下帽子和眼镜,正对您的手机摄像头完成人脸识别后"
        "再提交。",
        feature="binding",
        field="member_face_token",
    ),
    _r(
        "CORRECTION_REQUESTED",
        "经办人员审核后要求补正材料:{detail}",
        "请按要求补传或更换材料,确认无误后在「办理记录」中重新提交,无需重新填写申请。",
        feature="binding",
        detail="",
    ),
    _r(
        "MATERIALS_REJECTED",
        "材料审核未通过:材料不清晰或与填写信息不符。{detail}",
        "请重新拍摄清晰、完整、无遮挡反光的证件照片,确认与填写的姓名、证件号码一致后"
        "重新上传并提交。",
        feature="binding",
        detail="",
    ),
    _r(
        "COMMITMENT_REQUIRED",
        "尚未签署《个人承诺书》。",
        "请阅读《个人承诺书》并签署后再提交绑定申请。",
        feature="binding",
    ),
    _r(
        "COMMITMENT_OUTDATED",
        "《个人承诺书》已更新,您签署的是旧版本。",
        "请阅读最新版《个人承诺书》并重新签署后再提交。",
        feature="binding",
    ),
    _r(
        "SYSTEM_BUSY",
        "系统繁忙或网络异常,本次操作未完成。",
        "可能是网络卡顿或医保服务繁忙,请稍后再试;多次失败请联系当地医保经办机构。",
        retry_after=30,
    ),
    # --- 家庭共济 authorization ----------------------------------------------------------
    _r(
        "AUTHORIZER_NOT_VERIFIED",
        "您尚未完成实名认证,暂不能授权家庭共济。",
        "请先完成实名认证并激活本人的医保电子凭证(人脸识别),再授权家人。",
        feature="mutual_aid",
    ),
    _r(
        "AUTHORIZER_NOT_EMPLOYEE",
        "只有正常参加职工医保的参保人才能授权家庭共济。",
        "城乡居民医保没有个人账户,不能作为授权人;可由参加职工医保的家人发起授权,"
        "或用职工医保为家人代缴居民医保。",
        feature="mutual_aid",
    ),
    _r(
        "NO_PERSONAL_ACCOUNT",
        "您的职工医保没有个人账户,无法共济。",
        "家庭共济使用的是授权人个人账户的余额,请向参保地医保经办机构确认个人账户状态。",
        feature="mutual_aid",
    ),
    _r(
        "SELF_NOT_ALLOWED",
        "不能授权给自己。",
        "您本人就医时直接使用本人医保个人账户,无需共济;请填写要授权的家人的信息。",
        feature="mutual_aid",
        field="id_number",
    ),
    _r(
        "ALREADY_AUTHORIZED",
        "您已授权该家人使用您的个人账户,无需重复授权。",
        "请在「家庭共济」中查看已授权的家人;如需重新授权,请先解除原授权。",
        feature="mutual_aid",
    ),
    _r(
        "FAMILY_SIZE_LIMIT",
        "共济家庭已有{limit}人(含授权人本人),已达上限。",
        "一个共济家庭最多{limit}人(含您本人),请先解除一位已授权的家人后再添加。",
        feature="mutual_aid",
        limit=7,
    ),
    _r(
        "AUTHORIZER_LIMIT",
        "该家人已被{limit}位授权人共济,当地规定不能再添加授权人。",
        "当地规定每人最多由{limit}位授权人共济,请先由原授权人解除授权。",
        feature="mutual_aid",
        limit=1,
    ),
    _r(
        "OUTSIDE_POOLING_AREA",
        "您与该家人不在同一医保统筹区参保,当时暂不支持跨统筹区共济。",
        "请由在家人参保地参加职工医保的近亲属授权;省内共济开通后可直接授权。",
        feature="mutual_aid",
    ),
    _r(
        "CROSS_PROVINCE_NOT_ALLOWED",
        "您与该家人不在同一省份参保,目前暂不支持跨省共济。",
        "可由在家人参保省份参加职工医保的近亲属授权{opening}。",
        feature="mutual_aid",
        opening="",
    ),
    _r(
        "CROSS_PROVINCE_QUOTA_REQUIRED",
        "跨省共济需要先设置共济额度。",
        "请在国家医保服务平台App「医保钱包」中为家人设置共济额度(从您的个人账户中划出),"
        "解除共济关系后未用完的额度会退回您的个人账户。",
        feature="mutual_aid",
    ),
    _r(
        "NOTICE_REQUIRED",
        "尚未阅读并同意《职工医保个人账户家庭共济绑定告知书》。",
        "请阅读告知书并勾选同意后再授权。",
        feature="mutual_aid",
    ),
    _r(
        "NOTICE_OUTDATED",
        "《家庭共济绑定告知书》已更新,您同意的是旧版本。",
        "请阅读最新版告知书并重新勾选同意后再授权。",
        feature="mutual_aid",
    ),
    _r(
        "UNBIND_LOCKED",
        "共济关系建立未满{months}个月,当地规定暂不能解除。",
        "请于{unlock_date}及以后再解除共济关系。",
        feature="mutual_aid",
        months=3,
        unlock_date="绑定满期后",
    ),
)

REASONS: Mapping[str, Reason] = MappingProxyType({r.code: r for r in _CATALOGUE})

# API.md's binding failure codes: each must be recorded and explained.
API_BINDING_CODES: tuple[str, ...] = (
    "INFO_MISMATCH",
    "MEMBER_NOT_ACTIVATED",
    "BINDER_NOT_VERIFIED",
    "SYSTEM_BUSY",
    "MEMBER_LIMIT_REACHED",
    "MONTHLY_BINDER_LIMIT",
    "RELATIONSHIP_NOT_ALLOWED",
    "MINOR_DOCUMENTS_MISSING",
    "MATERIALS_REJECTED",
    "ALREADY_BOUND",
    "INVALID_ID_NUMBER",
    "COMMITMENT_REQUIRED",
    "COMMITMENT_OUTDATED",
)


def reason(code: str, **fmt: Any) -> Reason:
    """The catalogue entry for ``code`` with its placeholders filled (defaults otherwise).

    Raises ``KeyError`` for a code that is not in the catalogue.
    """
    try:
        entry = REASONS[code]
    except KeyError:
        raise KeyError(f"unknown failure reason code: {code!r}") from None
    return entry.formatted(**fmt)


def error(code: str, **fmt: Any) -> DomainError:
    """A ``DomainError`` for ``code``: Chinese message, field and the fix as detail."""
    r = reason(code, **fmt)
    return DomainError(
        r.code,
        r.message,
        fields={r.field: r.code} if r.field else None,
        detail={"fix": r.fix},
        retry_after=r.retry_after,
    )
