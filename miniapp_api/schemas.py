"""Request (XxxIn) and response (XxxOut) models; the same models generate OpenAPI."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.domain.identity import ID_TYPES


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginIn(In):
    code: str = Field(min_length=1, max_length=128, description="wx.login 返回的 code")


class RefreshIn(In):
    refresh_token: str = Field(min_length=1, max_length=256)


class UserBrief(BaseModel):
    id: int
    realname_verified: bool


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserBrief | None = None


class InsuranceOut(BaseModel):
    insurance_type: str
    region_code: str
    status: str
    has_personal_account: bool
    voucher_activated: bool


class MeOut(BaseModel):
    id: int
    realname_verified: bool
    name: str | None = Field(None, description="脱敏姓名")
    id_number: str | None = Field(None, description="脱敏证件号")
    insurance: InsuranceOut | None = None


# --- 家庭共济 (mutual aid) and notices ------------------------------------------------


class MutualAidNoticeOut(BaseModel):
    version: str
    title: str
    text: str
    sha256: str = Field(description="text 的 UTF-8 SHA-256(十六进制),授权时原样提交")


class AuthorizationCreate(In):
    name: str = Field(min_length=1, max_length=50, description="被授权人姓名")
    id_type: str = Field(min_length=1, max_length=32)
    id_number: str = Field(min_length=1, max_length=32)
    relationship: str = Field(min_length=1, max_length=16, description="被授权人是授权人的:spouse/parent/child/...")
    notice_version: str = Field(max_length=32, description="已阅读同意的告知书版本")
    notice_sha256: str = Field(max_length=64, description="已阅读同意的告知书 sha256")
    quota_fen: int | None = Field(None, gt=0, le=10**11, description="跨省共济额度(分),仅跨省时需要")


class PersonBrief(BaseModel):
    name: str = Field(description="脱敏姓名")
    id_number: str = Field(description="脱敏证件号")
    region_code: str


class AuthorizationPublic(BaseModel):
    id: str
    member: PersonBrief
    relationship: str
    state: str
    cross_province: bool
    quota_fen: int | None = None
    quota_remaining_fen: int | None = None
    notice_version: str
    created_at: str
    revocable_from: str = Field(description="可解除日期(当地解绑限制)")


class ReceivedAuthorization(BaseModel):
    id: str
    authorizer: PersonBrief
    relationship: str
    created_at: str


class AuthorizationList(BaseModel):
    items: list[AuthorizationPublic]
    received: list[ReceivedAuthorization] = Field(description="授权给我的共济关系")


class NoticesQuery(In):
    limit: int = Field(50, ge=1, le=200)


class NoticePublic(BaseModel):
    id: str
    kind: str
    state: str
    title: str
    created_at: str
    data: dict[str, object]
    sent_at: str | None = None
    reason: str | None = None
    errcode: int | None = None


class NoticeList(BaseModel):
    items: list[NoticePublic]
# -- 亲情账户 (issue #3) -------------------------------------------------------------

# API.md id_type values, from the one list in server.domain.identity
IdType = Literal[ID_TYPES]  # type: ignore[valid-type]  # the values of a tuple, not literals: pydantic reads them
Name = Annotated[str, Field(min_length=1, max_length=50, description="姓名(与证件一致)")]
IdNumber = Annotated[str, Field(min_length=1, max_length=32, description="证件号码")]
# Any short word: the policy answers RELATIONSHIP_NOT_ALLOWED for one it does not allow.
Relationship = Annotated[
    str,
    Field(
        pattern=r"^[a-z_]{1,16}$",
        description="被绑定人是绑定人的: spouse 配偶 / parent 父母 / child 子女",
    ),
]


class RealnameIn(In):
    name: Name
    id_type: IdType
    id_number: IdNumber
    face_token: str = Field(
        min_length=1, max_length=256, description="人脸核身结果:wx.startFacialRecognitionVerify 的 verifyResult"
    )


class FaceSessionIn(In):
    """``realname``: the caller's own name + ID; ``member``: the member of the caller's
    own application (the server reads the name + ID from it)."""

    purpose: Literal["realname", "member"] = Field(description="realname 本人 / member 被绑定人")
    name: Name | None = None
    id_type: IdType | None = None
    id_number: IdNumber | None = None
    application_id: str | None = Field(None, max_length=64, description="绑定申请 id(member)")


class FaceSessionOut(BaseModel):
    user_id_key: str = Field(description="wx.startFacialRecognitionVerify({userIdKey})")
    expires_in: int = Field(description="有效秒数")


class PrecheckIn(In):
    name: Name
    id_type: IdType
    id_number: IdNumber
    relationship: Relationship


class ApplicationIn(PrecheckIn):
    phone: str | None = Field(None, pattern=r"^1[3-9][0-9]{9}$", description="被绑定人手机号")
    reason: str | None = Field(
        None, max_length=200, description="申请原因(默认:为了方便家人代办医保业务)"
    )


class CommitmentSignIn(In):
    version: str = Field(min_length=1, max_length=32)
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$", description="所阅读的承诺书全文的 SHA-256"
    )
    signature_image: str | None = Field(
        None, max_length=700_000, description="手写签名图片(PNG/JPEG,base64,可选)"
    )


class SubmitIn(In):
    member_face_token: str | None = Field(
        None, max_length=256, description="被绑定人人脸核身凭证(16周岁及以上)"
    )
    verification: Literal["face", "documents"] | None = Field(
        None,
        description="documents: 被绑定人无法人脸核身时改用户口本(显示关系的页面)或关系公证书,由经办人员审核",
    )


class PageQuery(In):
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


class SettlementsQuery(In):
    year: int | None = Field(None, ge=2000, le=2100)
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(50, ge=1, le=200)


class VoucherPasswordIn(In):
    password: str = Field(pattern=r"^[0-9]{6}$", repr=False, description="6位数字医保支付密码")
    member_face_token: str | None = Field(
        None,
        max_length=256,
        description="家人的人脸核身结果(verifyResult);修改已设置的密码时必填",
    )


class YearQuery(In):
    year: int | None = Field(None, ge=2000, le=2100)


class Blocking(BaseModel):
    code: str
    message: str
    fix: str


class RequiredMaterial(BaseModel):
    kinds: list[str] = Field(description="其中任一种即可(用 + 连接的须同时提供)")
    alternatives: list[list[str]] = Field(
        default_factory=list, description="可选方案:每个方案中的材料须同时提供"
    )
    label: str


class PrecheckOut(BaseModel):
    ok: bool
    blocking: list[Blocking]
    required_materials: list[RequiredMaterial]
    face_check_required: bool
    review_required: bool


class MaskedPerson(BaseModel):
    name: str
    id_type: str | None = None
    id_number: str


class MaterialOut(BaseModel):
    id: str
    kind: str
    label: str
    content_type: str
    size: int
    sha256: str
    created_at: str | None


class SignatureOut(BaseModel):
    version: str
    sha256: str
    signed_at: str | None
    signature_image: bool


class Failure(BaseModel):
    code: str
    message: str | None
    fix: str


class ApplicationOut(BaseModel):
    id: str
    state: str
    relationship: str
    relationship_label: str
    member: MaskedPerson
    reason: str
    failure: Failure | None = None
    materials: list[MaterialOut] = []
    commitment: SignatureOut | None = None
    binding_id: str | None = None
    member_activated: bool = Field(False, description="本次绑定为被绑定人代激活了医保电子凭证")
    created_at: str | None
    submitted_at: str | None
    decided_at: str | None


class ApplicationListOut(BaseModel):
    items: list[ApplicationOut]
    next_cursor: str | None = None


class CommitmentOut(BaseModel):
    version: str
    title: str
    text: str
    sha256: str
    published_at: str | None = None


class MemberInsurance(BaseModel):
    insurance_type: str
    region_code: str
    status: str
    voucher_activated: bool


class MemberOut(BaseModel):
    id: str = Field(description="binding_id")
    state: str
    relationship: str
    relationship_label: str
    member: MaskedPerson
    insurance: MemberInsurance
    bound_at: str | None


class MemberListOut(BaseModel):
    items: list[MemberOut]


class BinderBrief(BaseModel):
    name: str | None = Field(None, description="绑定人脱敏姓名")


class BinderOut(BaseModel):
    id: str = Field(description="绑定关系 id")
    relationship: str = Field(description="您是绑定人的什么人")
    binder: BinderBrief
    bound_at: str | None


class BinderListOut(BaseModel):
    items: list[BinderOut]


class VoucherOut(BaseModel):
    qr_token: str
    expires_at: str
    ttl_seconds: int


class SettlementItemOut(BaseModel):
    """One settlement of the member (national 2207 names; amounts in 分)."""

    setl_id: str
    institution: str
    med_type: str
    setl_time: str
    medfee_sumamt: int
    hifp_pay: int
    fund_pay_sumamt: int
    psn_part_amt: int
    acct_pay: int
    acct_mulaid_pay: int
    psn_cash_pay: int
    state: str = Field(description="settled | reversed")
    reversed_at: str | None


class SettlementListOut(BaseModel):
    items: list[SettlementItemOut]
    total: int
    next_cursor: str | None = None
    visible_from: str | None = Field(None, description="绑定生效时间:绑定人只能看到此后的结算")


class SummaryOut(BaseModel):
    year: int
    balance: int | None = Field(None, description="个人账户余额(分)")
    member: MaskedPerson
    insurance: MemberInsurance
    # the year's settlements since the binding: their number and sums (分, national names)
    count: int
    medfee_sumamt: int
    hifp_pay: int
    psn_part_amt: int
    acct_pay: int
    acct_mulaid_pay: int
    psn_cash_pay: int


# --- personal information (API.md v1.1 "Privacy"; PIPL) ----------------------------------

PurposeId = Annotated[str, Field(min_length=1, max_length=32, description="face / id_documents / medical_records / notices")]


class PrivacyPurposeOut(BaseModel):
    id: str
    title: str
    text: str


class PrivacyNoticeOut(BaseModel):
    version: str
    title: str
    text: str
    sha256: str = Field(description="text 的 UTF-8 SHA-256(十六进制),同意时原样提交")
    purposes: list[PrivacyPurposeOut] = Field(description="需要单独同意的各项用途")


class ConsentsIn(In):
    version: str = Field(min_length=1, max_length=32, description="已阅读的告知书版本")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="已阅读的告知书 sha256")
    purposes: list[PurposeId] = Field(max_length=16, description="本次同意的用途(可以为空:只确认已阅读)")


class ConsentItem(BaseModel):
    purpose: str
    title: str
    version: str | None = Field(None, description="同意时的告知书版本")
    granted: bool
    accepted_at: str | None = None
    withdrawn_at: str | None = None
    renewal_needed: bool = Field(description="该用途的说明已更新,需要重新同意")


class ConsentsOut(BaseModel):
    version: str | None = Field(None, description="用户最近一次同意的告知书版本(从未同意:null)")
    current_version: str = Field(description="现行告知书版本")
    items: list[ConsentItem]


class ConsentWithdrawnOut(BaseModel):
    purpose: str
    title: str
    granted: bool
    withdrawn_at: str | None = None
    effect: str = Field(description="撤回后会发生什么")


class FileLinkQuery(In):
    u: str = Field(max_length=20, description="链接所属用户")
    exp: str = Field(max_length=20, description="过期时间(Unix 秒)")
    sig: str = Field(max_length=64, description="签名")


class DeletionLine(BaseModel):
    what: str
    text: str


class KeptLine(BaseModel):
    what: str
    text: str
    why: str = Field(description="保留的原因(法律依据)")


class AccountDeletedOut(BaseModel):
    state: Literal["done", "in_progress"]
    message: str
    started_at: str
    finished_at: str | None = None
    done: list[DeletionLine] = Field(description="已完成的步骤")
    kept: list[KeptLine] = Field(description="依法保留(去标识化)的信息及原因")
