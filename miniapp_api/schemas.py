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
