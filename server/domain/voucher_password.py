"""The member's 医保电子凭证 payment password (医保凭证密码), set by the binder (issue 11 point 1;
wuhannews: "完成激活及刷医保凭证密码设置").

Rules:

* The binder of an active binding sets the member's password: 6 digits, not a trivial
  one (one digit six times, a run like 123456 / 654321) nor the member's birthday
  (``VOUCHER_PASSWORD_WEAK``). The first one needs no face check (the binding was the
  check); *changing* one needs the member's face check on the binder's phone
  (``FACE_CHECK_FAILED``): another binder of the same member cannot take it over.
  A change clears a lock.
* Stored as argon2id (argon2-cffi, the console's cost settings) of the password keyed
  with the server's secret (``PiiCipher.blind_index``): a copy of the table alone cannot
  be searched through the million 6-digit passwords. Hashing and verifying run in a
  worker thread. The password never reaches a log line or an error.
* Institutions verify a 医保码 with it (``POST /api/v1/institution/vouchers/verify``)
  where the member's region policy says ``voucher_password_required`` (dated, per
  region); elsewhere a password given is still checked when one is set. Without one:
  ``VOUCHER_PASSWORD_REQUIRED`` (or ``VOUCHER_PASSWORD_NOT_SET`` when the binder never
  set one). ``voucher_password_max_attempts`` (5) wrong tries lock it for
  ``voucher_password_lock_minutes`` (30): ``VOUCHER_PASSWORD_LOCKED`` with Retry-After,
  right password or not. Each try is counted *before* the hash is compared, under the
  row's lock, so concurrent guesses get no more than the allowed number of tries.
  A refused verify leaves the 医保码 unused.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain import reasons, vouchers
from server.domain.clock import Clock, cn_today, parse_uuid, utc_now
from server.domain.errors import DomainError
from server.domain.identity import parse_id
from server.domain.models import Binding, InsuredPerson, VoucherPassword
from server.domain.settlements import service as settlements
from server.ratelimit import hit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.face_check import FaceService
    from server.domain.pii import PiiCipher
    from server.domain.policy import PolicyEngine
    from server.domain.settlements.request import SettlementRequest

__all__ = ["PasswordRules", "VoucherPasswords", "weak"]

_FIX_SET = "请绑定人在「亲情医保」小程序的家庭成员页为家人设置医保支付密码。"


@dataclass(frozen=True)
class PasswordRules:
    """The policy's three settings for one member (``config/policy.toml``)."""

    required: bool
    max_attempts: int
    lock_minutes: int


def weak(password: str, *, birth: str | None = None) -> bool:
    """A password anyone would try first: one digit six times, a run up or down, or the
    member's birthday (YYMMDD, MMDDYY or DDMMYY of ``birth`` = ``YYYYMMDD``)."""
    if len(set(password)) == 1:
        return True
    steps = {(int(b) - int(a)) % 10 for a, b in zip(password, password[1:])}
    if steps in ({1}, {9}):
        return True
    if birth:
        yy, mm, dd = birth[2:4], birth[4:6], birth[6:8]
        return password in {yy + mm + dd, mm + dd + yy, dd + mm + yy}
    return False


class VoucherPasswords:
    """Set and check members' payment passwords (``keys.voucher_passwords_key``); tests
    move ``clock``."""

    def __init__(
        self,
        *,
        face: FaceService,
        policy: PolicyEngine,
        pii: PiiCipher,
        redis: Redis,
        hasher: PasswordHasher,
        sets_per_hour: int = 10,
        clock: Clock | None = None,
    ) -> None:
        self.face = face
        self.policy = policy
        self.pii = pii
        self.redis = redis
        self.hasher = hasher
        self.sets_per_hour = sets_per_hour
        self.clock: Clock = clock or utc_now

    # ---- the binder sets it -------------------------------------------------------------

    async def set(
        self, user_id: int, binding_id: str, *, password: str, member_face_token: str | None
    ) -> None:
        """Set (or, with the member's face check, change) the member's password."""
        await hit(self.redis, f"voucher-password:set:{user_id}", limit=self.sets_per_hour, per_seconds=3600)
        binding = await _owned_binding(user_id, binding_id)
        person: InsuredPerson = binding.member
        name = self.pii.decrypt(person.name_enc, purpose="name")
        id_number = self.pii.decrypt(person.id_number_enc, purpose="id_number")
        birth = _birth(person.id_type, id_number, self.clock())
        if weak(password, birth=birth):
            raise DomainError(
                "VOUCHER_PASSWORD_WEAK",
                "密码过于简单(如相同或连续的数字、生日),请换一个6位数字密码。",
                fields={"password": "VOUCHER_PASSWORD_WEAK"},
            )
        existing = await VoucherPassword.filter(person_id=person.id).exists()
        face_checked = existing or bool(member_face_token)
        if face_checked:
            passed = bool(member_face_token) and await self.face.check(
                user_id, str(member_face_token), name=name, id_number=id_number, purpose="member"
            )
            if not passed:
                raise _face_needed()
        digest = await asyncio.to_thread(self.hasher.hash, self._keyed(person.id, password))
        values: dict[str, Any] = {
            "password_hash": digest,
            "set_at": self.clock(),
            "set_by_id": user_id,
            "failed_count": 0,
            "locked_until": None,
        }
        if face_checked and await VoucherPassword.filter(person_id=person.id).update(**values):
            return
        try:
            await VoucherPassword.create(person_id=person.id, **values)
        except IntegrityError:
            # another binder set the first one meanwhile: this one is a change now
            if not face_checked:
                raise _face_needed() from None
            await VoucherPassword.filter(person_id=person.id).update(**values)

    # ---- an institution checks it -------------------------------------------------------

    async def verify_voucher(self, qr_token: str, password: str | None) -> dict[str, Any]:
        """``POST /api/v1/institution/vouchers/verify``: the member's password where the
        policy asks for it (module docstring), then the 医保码 is used
        (``settlements.verify_voucher``)."""
        claim = await vouchers.peek(self.redis, qr_token)
        person = await InsuredPerson.get_or_none(id=claim.member_id).only("id", "region_code")
        if person is not None:
            await self.check(person.id, person.region_code, password)
        return await settlements.verify_voucher(qr_token, redis=self.redis, pii=self.pii)

    async def settle(
        self, req: SettlementRequest, password: str | None, **context: Any
    ) -> settlements.SettleResult:
        """A 2207 (``settlements.settle``): by a 医保码, the member's password first, as
        ``verify_voucher`` — a 医保码 must not pay where its verify would be refused. A
        used or expired 医保码 goes on to ``settle``, which answers a retry of the
        settlement that used it or refuses."""
        if req.qr_token:
            try:
                claim = await vouchers.peek(self.redis, req.qr_token)
            except DomainError:
                claim = None
            if claim is not None:
                person = await InsuredPerson.get_or_none(id=claim.member_id).only("id", "region_code")
                if person is not None:
                    await self.check(person.id, person.region_code, password)
        return await settlements.settle(req, **context)

    def rules(self, region_code: str) -> PasswordRules:
        p = self.policy.settings(region_code, cn_today(self.clock()))
        return PasswordRules(
            required=p.voucher_password_required,
            max_attempts=p.voucher_password_max_attempts,
            lock_minutes=p.voucher_password_lock_minutes,
        )

    async def check(self, person_id: int, region_code: str, password: str | None) -> None:
        """Refuse a payment as this person without the right password where one is
        required (or given); count wrong tries and lock."""
        rules = self.rules(region_code)
        if password is None:
            if not rules.required:
                return
            if not await VoucherPassword.filter(person_id=person_id).exists():
                raise _not_set()
            raise DomainError(
                "VOUCHER_PASSWORD_REQUIRED",
                "该参保人所在地要求输入医保支付密码,请患者(或其家人)输入6位密码后重新核验。",
                fields={"password": "REQUIRED"},
            )
        digest = await self._reserve_try(person_id, rules)
        if digest is None:
            if rules.required:
                raise _not_set()
            return  # no password set where none is required: nothing to compare
        if await asyncio.to_thread(self._matches, digest, self._keyed(person_id, password)):
            await VoucherPassword.filter(person_id=person_id).update(failed_count=0)
            return
        left = await self._wrong_try(person_id, rules)
        if left <= 0:
            raise _locked(rules.lock_minutes * 60)
        raise DomainError(
            "VOUCHER_PASSWORD_WRONG",
            f"医保支付密码错误,还可以再试{left}次。",
            detail={"attempts_left": left},
        )

    async def _reserve_try(self, person_id: int, rules: PasswordRules) -> str | None:
        """Count one try before comparing (under the row's lock); the hash to compare,
        None when no password is set; LOCKED while locked or out of tries."""
        now = self.clock()
        async with in_transaction():
            row = await _locked_row(person_id)
            if row is None:
                return None
            if row.locked_until is not None and row.locked_until > now:
                locked_for = (row.locked_until - now).total_seconds()
            elif row.failed_count >= rules.max_attempts:
                locked_for = float(rules.lock_minutes * 60)  # the last tries are under way
            else:
                locked_for = 0.0
                fresh = row.locked_until is not None  # a lock that ended: tries start over
                row.failed_count = (0 if fresh else row.failed_count) + 1
                row.locked_until = None
                await row.save(update_fields=["failed_count", "locked_until"])
        if locked_for > 0:
            raise _locked(locked_for)
        return row.password_hash

    async def _wrong_try(self, person_id: int, rules: PasswordRules) -> int:
        """A try was wrong: the tries left; at none, the password locks."""
        now = self.clock()
        async with in_transaction():
            row = await _locked_row(person_id)
            if row is None:
                return rules.max_attempts
            left = rules.max_attempts - row.failed_count
            if left <= 0 and row.locked_until is None:
                row.locked_until = now + timedelta(minutes=rules.lock_minutes)
                row.failed_count = 0
                await row.save(update_fields=["failed_count", "locked_until"])
        return left

    # ---- hashing ------------------------------------------------------------------------

    def _keyed(self, person_id: int, password: str) -> str:
        """The password keyed with the server's secret and bound to the person."""
        return self.pii.blind_index(f"{person_id}:{password}", purpose="voucher_password")

    def _matches(self, digest: str, keyed: str) -> bool:
        try:
            return self.hasher.verify(digest, keyed)
        except (VerificationError, InvalidHashError):
            return False


async def _owned_binding(user_id: int, binding_id: str) -> Binding:
    """The caller's active binding with its member; anyone else's is 404 like none."""
    binding_uuid = parse_uuid(binding_id)
    binding = (
        await Binding.filter(id=binding_uuid, binder_id=user_id, state="active")
        .select_related("member")
        .first()
        if binding_uuid is not None
        else None
    )
    if binding is None:
        raise DomainError("NOT_FOUND", "家庭成员不存在")
    return binding


async def _locked_row(person_id: int) -> VoucherPassword | None:
    q = VoucherPassword.filter(person_id=person_id)
    if connections.get("default").capabilities.dialect != "sqlite":
        q = q.select_for_update()
    return await q.first()


def _birth(id_type: str, id_number: str, now: datetime) -> str | None:
    try:
        born = parse_id(id_type, id_number, today=cn_today(now)).birth_date
    except DomainError:
        return None
    return born.strftime("%Y%m%d") if born is not None else None


def _face_needed() -> DomainError:
    err = reasons.error("FACE_CHECK_FAILED")
    err.message = "修改医保支付密码需要家人本人在场完成人脸核验,核验未通过。"
    err.fields = {"member_face_token": "FACE_CHECK_FAILED"}
    return err


def _not_set() -> DomainError:
    return DomainError(
        "VOUCHER_PASSWORD_NOT_SET",
        "该参保人所在地要求医保支付密码,但尚未设置。" + _FIX_SET,
    )


def _locked(seconds: float) -> DomainError:
    minutes = max(1, math.ceil(seconds / 60))
    return DomainError(
        "VOUCHER_PASSWORD_LOCKED",
        f"医保支付密码错误次数过多,已锁定,请{minutes}分钟后再试。",
        retry_after=max(1, math.ceil(seconds)),
    )
