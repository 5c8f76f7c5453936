"""Bureau staff: accounts, passwords, region scopes, sessions and login throttling.

* Accounts: a name, a role (``reviewer`` works the review queue, ``counter`` serves people
  at the window, ``admin`` sees staff, the audit log and analytics and may also review),
  and regions. Created by ``python -m server staff add``, which prints the generated
  password once (API.md "Staff (v1.1)").
* Passwords: argon2id (argon2-cffi, the reference implementation's binding), hashed and
  verified in a worker thread (tens of milliseconds of CPU and 64 MiB each by default).
* Scope: a staff member sees only applications and people of their regions; a province
  code (``420000``) covers its cities and districts, ``000000`` everything (``region_chain``).
* Sessions: a random id in an HttpOnly, Secure, SameSite=Strict cookie; the session lives
  in Redis under the id's SHA-256 (a Redis dump does not hold usable cookies) with its own
  CSRF token. It ends after ``idle_timeout_seconds`` without a request, after
  ``session_max_seconds`` in any case, at logout, and when the account is disabled or its
  password reset (``session_epoch``). A login always makes a new id (no fixation).
* Throttling: failed logins counted per name and per client address in Redis; past the
  limit every attempt is 429 until the window ends, right password or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.expressions import Q

from server.domain import audit
from server.domain.clock import Clock, utc_now
from server.domain.errors import DomainError
from server.domain.models import Staff
from server.domain.policy import NATIONAL, region_chain

log = logging.getLogger(__name__)

ROLES: dict[str, str] = {"reviewer": "审核员", "counter": "窗口经办", "admin": "管理员"}
# what each part of the console needs
REVIEW_ROLES = frozenset({"reviewer", "admin"})
COUNTER_ROLES = frozenset({"counter", "admin"})
ADMIN_ROLES = frozenset({"admin"})

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,46}")
DEMO_STAFF: tuple[tuple[str, str, str], ...] = (
    ("demo-admin", "admin", NATIONAL),
    ("demo-reviewer", "reviewer", "420000"),
    ("demo-counter", "counter", "420100"),
)


def parse_regions(raw: str | Iterable[str]) -> tuple[str, ...]:
    """``"420000,110000"`` → ("420000", "110000"); each a 6-digit code (ValueError)."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    out = tuple(dict.fromkeys(c.strip() for c in items if c.strip()))
    if not out:
        raise ValueError("at least one region code is needed")
    for code in out:
        region_chain(code)  # validates: six digits
    return out


@dataclass(frozen=True)
class Principal:
    """The staff member behind a request, as the services check them."""

    staff_id: int | None
    name: str
    role: str
    regions: tuple[str, ...]
    ip: str | None = None

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(self.staff_id, self.name, self.ip)

    @property
    def role_label(self) -> str:
        return ROLES.get(self.role, self.role)

    def covers(self, region_code: str | None) -> bool:
        """Whether ``region_code`` lies inside one of this member's regions."""
        if NATIONAL in self.regions:
            return True
        if not region_code:
            return False
        try:
            chain = region_chain(region_code)
        except ValueError:
            return False
        return any(r in chain for r in self.regions)

    def region_q(self, *paths: str) -> Q | None:
        """A filter keeping rows whose region (the first of ``paths`` that is set) lies in
        scope; None when the scope is national (no filter)."""
        if NATIONAL in self.regions:
            return None
        alternatives: list[Q] = []
        for region in self.regions:
            prefix = _prefix(region)
            for i, path in enumerate(paths):
                conds = [Q(**{f"{p}__isnull": True}) for p in paths[:i]]  # type: ignore[arg-type]  # tortoise: Q(**filters) typed as str
                conds.append(Q(**{f"{path}__startswith": prefix}))
                alternatives.append(Q(*conds, join_type="AND"))
        return Q(*alternatives, join_type="OR")

    def require(self, roles: frozenset[str]) -> None:
        if self.role not in roles:
            raise DomainError("FORBIDDEN", "您的岗位无权进行此操作")


def _prefix(region: str) -> str:
    """420000 → "42", 420100 → "4201", 420102 → "420102"."""
    if region.endswith("0000"):
        return region[:2]
    if region.endswith("00"):
        return region[:4]
    return region


def principal_of(staff: Staff, ip: str | None = None) -> Principal:
    return Principal(staff.id, staff.name, staff.role, parse_regions(staff.regions), ip)


# -- accounts -------------------------------------------------------------------------


def hasher_for(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def new_password() -> str:
    """16 URL-safe characters from the OS's CSPRNG (96 bits)."""
    return secrets.token_urlsafe(12)


def _check_account(name: str, role: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise ValueError("name: 2-47 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")


async def add_staff(
    *,
    name: str,
    role: str,
    regions: str | Iterable[str],
    hasher: PasswordHasher,
    password: str | None = None,
    demo: bool = False,
) -> tuple[Staff, str]:
    """Create an account; returns it with its password (generated unless given)."""
    _check_account(name, role)
    codes = parse_regions(regions)
    if await Staff.filter(name=name).exists():
        raise ValueError(f"staff {name!r} exists already")
    password = password or new_password()
    digest = await asyncio.to_thread(hasher.hash, password)
    staff = await Staff.create(
        name=name, role=role, regions=",".join(codes), password_hash=digest, demo=demo
    )
    return staff, password


async def disable_staff(name: str) -> Staff:
    """The account can no longer log in; its sessions end at their next request."""
    staff = await _get(name)
    staff.active = False
    staff.session_epoch += 1
    await staff.save(update_fields=["active", "session_epoch", "updated_at"])
    return staff


async def reset_password(
    name: str, *, hasher: PasswordHasher, role: str | None = None, regions: str | None = None
) -> tuple[Staff, str]:
    """A new generated password (the account is active again); other sessions end.
    ``role`` / ``regions`` change them at the same time when given."""
    staff = await _get(name)
    if role is not None:
        _check_account(name, role)
        staff.role = role
    if regions is not None:
        staff.regions = ",".join(parse_regions(regions))
    password = new_password()
    staff.password_hash = await asyncio.to_thread(hasher.hash, password)
    staff.active = True
    staff.session_epoch += 1
    await staff.save()
    return staff, password


async def _get(name: str) -> Staff:
    staff = await Staff.get_or_none(name=name)
    if staff is None:
        raise ValueError(f"no staff named {name!r}")
    return staff


async def list_staff() -> list[dict[str, Any]]:
    rows = await Staff.all().order_by("name")
    return [
        {
            "id": s.id,
            "name": s.name,
            "role": s.role,
            "role_label": ROLES.get(s.role, s.role),
            "regions": s.regions,
            "active": s.active,
            "demo": s.demo,
            "last_login_at": s.last_login_at,
        }
        for s in rows
    ]


async def ensure_demo_staff(*, hasher: PasswordHasher, password: str) -> list[str]:
    """Demo mode only: demo-admin, demo-reviewer and demo-counter with the documented
    demo password (created once; their password is set back to it at every start)."""
    names = []
    for name, role, region in DEMO_STAFF:
        staff = await Staff.get_or_none(name=name)
        digest = await asyncio.to_thread(hasher.hash, password)
        if staff is None:
            await Staff.create(
                name=name, role=role, regions=region, password_hash=digest, demo=True
            )
        else:
            staff.password_hash, staff.active, staff.demo = digest, True, True
            await staff.save()
        names.append(name)
    return names


async def refuse_demo_staff() -> None:
    """Production start-up: active demo accounts are a refusal to start (the demo
    password is public)."""
    demo = [str(n) for n in await Staff.filter(demo=True, active=True).values_list("name", flat=True)]
    if demo:
        raise RuntimeError(
            "refusing to start in production: demo staff accounts are active "
            f"({', '.join(demo)}); disable them with `python -m server staff disable NAME`"
        )


# -- sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffSession:
    id: str  # the cookie value (never stored: Redis holds its SHA-256)
    csrf: str
    principal: Principal


@dataclass(frozen=True)
class SessionPolicy:
    idle_seconds: int
    max_seconds: int
    failures_per_name: int
    failures_per_ip: int
    failure_window_seconds: int
    refuse_demo: bool  # production: demo accounts never log in


def _key(session_id: str) -> str:
    return "staff:session:" + hashlib.sha256(session_id.encode()).hexdigest()


class StaffService:
    """Logins, sessions and their end (the console's one way in)."""

    def __init__(
        self, *, redis: Any, hasher: PasswordHasher, policy: SessionPolicy, clock: Clock = utc_now
    ) -> None:
        self.redis = redis
        self.hasher = hasher
        self.policy = policy
        self.clock = clock
        self._dummy: str | None = None

    def _dummy_hash(self) -> str:
        """Verified against when the name is unknown: the same work as a real check, so
        the time taken does not tell which names exist (made at the first such login)."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(12))
        return self._dummy

    # throttling
    def _fail_keys(self, name: str, ip: str | None) -> tuple[str, str]:
        window = int(self.clock().timestamp()) // self.policy.failure_window_seconds
        hashed = hashlib.sha256(name.strip().lower().encode()).hexdigest()[:32]
        return (f"staff:login-fail:name:{hashed}:{window}", f"staff:login-fail:ip:{ip or '-'}:{window}")

    def _retry_after(self) -> int:
        w = self.policy.failure_window_seconds
        now = self.clock().timestamp()
        return max(1, int((now // w + 1) * w - now))

    async def _throttled(self, name: str, ip: str | None) -> bool:
        # two GETs, not MGET: the two counters live in two Redis Cluster slots
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._fail_keys(name, ip):
                pipe.get(key)
            by_name, by_ip = await pipe.execute()
        return int(by_name or 0) >= self.policy.failures_per_name or int(
            by_ip or 0
        ) >= self.policy.failures_per_ip

    async def _count_failure(self, name: str, ip: str | None) -> None:
        ttl = self.policy.failure_window_seconds + 1
        async with self.redis.pipeline(transaction=False) as pipe:  # two slots (see above)
            for key in self._fail_keys(name, ip):
                pipe.incr(key)
                pipe.expire(key, ttl)
            await pipe.execute()

    async def login(self, name: str, password: str, *, ip: str | None) -> StaffSession:
        """Check the password and open a new session (a new id every time).

        Failures say only "用户名或密码错误" whatever failed (unknown name, wrong
        password, disabled account), and each is audited and counted."""
        name = name.strip()[:64]
        anonymous = audit.Actor(None, name or "-", ip)
        if await self._throttled(name, ip):
            await audit.record(anonymous, "login_throttled", target_kind="session")
            raise DomainError(
                "RATE_LIMITED",
                "登录失败次数过多,请稍后再试",
                retry_after=self._retry_after(),
            )
        staff = await Staff.get_or_none(name=name) if name else None
        ok = await asyncio.to_thread(
            self._verify, staff.password_hash if staff else self._dummy_hash(), password
        )
        usable = staff is not None and staff.active and not (staff.demo and self.policy.refuse_demo)
        if not ok or not usable or staff is None:
            await self._count_failure(name, ip)
            who = audit.Actor(staff.id if staff else None, name or "-", ip)
            await audit.record(who, "login_failed", target_kind="session")
            raise DomainError("LOGIN_FAILED", "用户名或密码错误")
        if self.hasher.check_needs_rehash(staff.password_hash):
            staff.password_hash = await asyncio.to_thread(self.hasher.hash, password)
        staff.last_login_at = self.clock()
        await staff.save(update_fields=["password_hash", "last_login_at", "updated_at"])
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = int(self.clock().timestamp())
        state = {"staff_id": staff.id, "epoch": staff.session_epoch, "csrf": csrf,
                 "created": now, "seen": now}
        await self.redis.set(_key(session_id), json.dumps(state), ex=self.policy.idle_seconds + 60)
        principal = principal_of(staff, ip)
        await audit.record(principal.actor, "login", target_kind="session")
        return StaffSession(session_id, csrf, principal)

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False

    async def resolve(self, session_id: str | None, *, ip: str | None) -> StaffSession | None:
        """The live session behind a cookie, touched (idle timer restarts); None when
        there is none, it idled out, outlived its maximum, or its account changed."""
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        raw = await self.redis.get(key)
        if raw is None:
            return None
        state = json.loads(raw)
        now = int(self.clock().timestamp())
        if now - state["seen"] > self.policy.idle_seconds or now - state["created"] > self.policy.max_seconds:
            await self.redis.delete(key)
            return None
        staff = await Staff.get_or_none(id=state["staff_id"])
        if (
            staff is None
            or not staff.active
            or staff.session_epoch != state["epoch"]
            or (staff.demo and self.policy.refuse_demo)
        ):
            await self.redis.delete(key)
            return None
        state["seen"] = now
        await self.redis.set(key, json.dumps(state), ex=self.policy.idle_seconds + 60)
        return StaffSession(session_id, state["csrf"], principal_of(staff, ip))

    async def logout(self, session: StaffSession) -> None:
        await self.redis.delete(_key(session.id))
        await audit.record(session.principal.actor, "logout", target_kind="session")


def when(dt: datetime | None) -> str:
    """A time as staff read it: 2026-12-03 14:05 (Asia/Shanghai)."""
    from server.domain.clock import SHANGHAI

    return "" if dt is None else dt.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
