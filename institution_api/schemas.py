"""Institution webhook bodies: the national 2207 / 2208 names (amounts as yuan strings).

Amounts and codes are ASCII: the patterns say ``[0-9]``, never ``\\d`` (which matches
any Unicode digit; issue #17 finding 9).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Yuan = Annotated[
    str,
    Field(
        strict=True,
        pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$",
        description="金额(元),字符串,最多两位小数",
    ),
]


class In(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)


class VoucherVerifyIn(In):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    qr_token: str = Field(min_length=1, max_length=128, description="医保码(动态、一次性)")
    password: str | None = Field(
        None,
        pattern=r"^[0-9]{6}$",
        repr=False,
        description="医保支付密码(6位数字);参保地政策要求时必填(voucher_password_required)",
    )


class VoucherVerifyOut(BaseModel):
    psn_no: str
    name: str = Field(description="姓名(不脱敏,供结算核对)")
    id_type: str
    id_number: str = Field(description="脱敏证件号")
    insurance_type: str
    region_code: str
    status: str
    has_personal_account: bool


class SettlementIn(In):
    """2207 setlinfo; other national fields are accepted and ignored (but count for idempotency)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    setl_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    mdtrt_id: str | None = Field(None, max_length=64, pattern=r"^[!-~]+$")
    med_type: str = Field(
        pattern=r"^[0-9]{2,6}$",
        description="11 普通门诊, 14 门诊慢特病, 21 普通住院, 41 定点药店购药",
    )
    qr_token: str | None = Field(None, max_length=128, pattern=r"^[!-~]+$")
    certno: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[0-9A-Za-z\-]+$",
        description="证件号码(与 qr_token、psn_no 三选一)",
    )
    id_type: str | None = Field(
        None, max_length=32, pattern=r"^[a-z_]+$", description="certno 的证件类型,默认 resident_id"
    )
    psn_no: str | None = Field(
        None, max_length=32, pattern=r"^[0-9A-Za-z_\-]+$", description="人员编号(核验医保码时返回)"
    )
    password: str | None = Field(
        None,
        pattern=r"^[0-9]{6}$",
        repr=False,
        description="医保支付密码(6位数字):以 qr_token 结算且参保地政策要求时必填;不参与幂等比对,不保存",
    )
    setl_time: str = Field(min_length=10, max_length=40, description="ISO 8601;无时区时按北京时间")
    medfee_sumamt: Yuan
    hifp_pay: Yuan
    fund_pay_sumamt: Yuan | None = None
    psn_part_amt: Yuan
    fulamt_ownpay_amt: Yuan | None = Field(None, description="全自费金额(政策范围外,共济不付)")
    overlmt_selfpay: Yuan | None = Field(None, description="超限价自费金额(政策范围外,共济不付)")
    preselfpay_amt: Yuan | None = Field(None, description="先行自付金额(政策范围内)")
    inscp_scp_amt: Yuan | None = Field(None, description="符合政策范围金额")


class MulaidDetail(BaseModel):
    authorizer: str = Field(description="授权人脱敏姓名")
    amount: str


class SettlementOut(BaseModel):
    setl_id: str
    psn_no: str | None = None
    med_type: str
    setl_time: str
    medfee_sumamt: str
    hifp_pay: str
    fund_pay_sumamt: str
    psn_part_amt: str
    acct_pay: str
    acct_mulaid_pay: str
    mulaid_detail: list[MulaidDetail]
    psn_cash_pay: str
    balc: str = Field(description="本次结算后本人个人账户余额")
    state: str
    reversed_at: str | None = None
    fulamt_ownpay_amt: str | None = None
    overlmt_selfpay: str | None = None
    preselfpay_amt: str | None = None
    inscp_scp_amt: str | None = None


class ReversalIn(In):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    setl_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(None, max_length=200)


class ReconciliationQuery(In):
    model_config = ConfigDict(extra="forbid")
    date: str = Field(description="对账日(北京时间自然日),YYYY-MM-DD")
    cursor: str | None = Field(None, max_length=40, description="上一页返回的 next_cursor")
    limit: int = Field(500, ge=1, le=1000, description="每页条数")


class ReconciliationSums(BaseModel):
    count: int
    medfee_sumamt: str
    hifp_pay: str
    fund_pay_sumamt: str
    psn_part_amt: str
    acct_pay: str
    acct_mulaid_pay: str
    psn_cash_pay: str


class ReconciliationItem(BaseModel):
    type: str = Field(description="2207 结算(按 setl_time 归日)或 2208 撤销(按撤销受理时间归日)")
    institution: str
    setl_id: str
    mdtrt_id: str | None = None
    psn_no: str | None = None
    med_type: str
    setl_time: str
    reversed_at: str | None = None
    state: str
    medfee_sumamt: str
    hifp_pay: str
    fund_pay_sumamt: str
    psn_part_amt: str
    acct_pay: str
    acct_mulaid_pay: str
    psn_cash_pay: str


class ReconciliationOut(BaseModel):
    """The first page (no cursor) carries the day's totals; every page carries items."""

    date: str
    institution: str
    closed: bool | None = Field(None, description="该日(北京时间)是否已结束")
    settlements: ReconciliationSums | None = None
    reversals: ReconciliationSums | None = None
    net: ReconciliationSums | None = None
    items: list[ReconciliationItem]
    next_cursor: str | None = None
