"""Request (XxxIn) and response (XxxOut) models; the same models generate OpenAPI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
