"""The face check (人脸核身) through WeChat, as the domain sees it (API.md v1.1 "Face check
through WeChat 人脸核身").

Two steps, both on the mini-program's access token (the shared ``TokenCache``):

1. :meth:`FaceService.open_session` — ``POST /api/v1/face/sessions``: WeChat's
   ``getuseridkey`` gives a ``user_id_key`` bound to the name + ID of the person to check
   (the caller for ``realname``; the member of the caller's own application for
   ``member``). We remember in Redis, for the key's lifetime, who opened it, for whom
   (the md5s WeChat reports, never the name or number) and what for.
2. :meth:`FaceService.check` — the ``verifyResult`` the mini-program got from
   ``wx.startFacialRecognitionVerify`` is redeemed once with ``getinfo``. It passes only
   when, in this order: it was not redeemed before by this caller for this person (a Redis
   ``SET NX``); WeChat knows it (84001 / 84002: failed); ``identify_ret`` is 0; the check
   ran on the caller's own phone (``openid``); it was of the expected person (both md5s);
   its session, if any, was opened by the caller for this person and purpose; and its
   ``finish_time`` is at most ``max_age_seconds`` (10 minutes) old by the service's clock.
   WeChat's docs ask for exactly these checks: the mini-program's own answer can be forged.

WeChat that cannot answer (down, busy, a quota) is ``SYSTEM_BUSY`` (503 with
Retry-After): nothing changes, and the same verify result can be tried again.

Demo mode (API.md): a verify result starting with ``ok`` passes for the expected person,
with or without a session opened first. The fake WeChat cannot know who did a demo check,
so the gateway tells it whom we expect (``FaceExpectation``) — only a WeChat on loopback
ever gets that hint; real WeChat's answer is compared the same way.

The replay guard is keyed by caller, expected person and result: a real verify result
belongs to one check of one person, so redeeming it "for" someone else fails the md5
comparison anyway; the demo's "ok-1" stays one check per caller and person, as the fake
treats it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from server.domain import reasons
from server.domain.clock import Clock, cn_today, parse_uuid, utc_now
from server.domain.errors import DomainError
from server.domain.identity import parse_id
from server.domain.models import Application, User
from server.gateways.wechat import (
    FaceExpectation,
    FaceIdentifyInfo,
    WeChatError,
    face_person_md5s,
)
from server.privacy.consent import ConsentService
from server.ratelimit import hit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.pii import PiiCipher
    from server.gateways.token_cache import TokenCache
    from server.gateways.wechat import WeChatGateway

__all__ = ["FaceLimits", "FaceService", "Purpose", "face_busy"]

log = logging.getLogger(__name__)

Purpose = Literal["realname", "member"]
T = TypeVar("T")

#: getinfo's answers that mean "no such (usable) result": the check failed, not WeChat.
DEAD_RESULT_ERRCODES = frozenset({84001, 84002})
#: A finish_time this far in our future is still believed (two machines' clocks).
CLOCK_SKEW_SECONDS = 60


def face_busy() -> DomainError:
    """SYSTEM_BUSY as the reasons catalogue words it (with its Retry-After)."""
    err = reasons.error("SYSTEM_BUSY")
    err.message = "人脸核身服务繁忙,请稍后重试"
    return err


@dataclass(frozen=True)
class FaceLimits:
    """``[face]`` in config: how old a check may be, how many sessions a user opens."""

    max_age_seconds: int = 600  # API.md: finish_time at most 10 minutes old
    sessions_per_window: int = 10
    sessions_window_seconds: int = 600


@dataclass(frozen=True)
class _Person:
    id_md5: str
    name_md5: str


class FaceService:
    """WeChat 人脸核身 for the mini-program (``keys.face_key``); tests move ``clock``."""

    def __init__(
        self,
        *,
        wechat: WeChatGateway,
        tokens: TokenCache,
        redis: Redis,
        pii: PiiCipher,
        limits: FaceLimits | None = None,
        clock: Clock | None = None,
        consents: ConsentService | None = None,
    ) -> None:
        # a face check needs the caller's separate consent to ``face`` (PIPL art. 29,
        # the 2025 face-recognition rules): no session is opened without it
        self.consents = consents or ConsentService()
        self.wechat = wechat
        self.tokens = tokens
        self.redis = redis
        self.pii = pii
        self.limits = limits or FaceLimits()
        self.clock: Clock = clock or utc_now

    async def close(self) -> None:
        await self.tokens.close()

    # ---- step 1: a session ----------------------------------------------------------

    async def open_session(
        self,
        user_id: int,
        *,
        purpose: Purpose,
        name: str | None = None,
        id_type: str | None = None,
        id_number: str | None = None,
        application_id: str | None = None,
    ) -> dict[str, Any]:
        """A ``user_id_key`` for checking the face of the person ``purpose`` names:
        the caller (``realname``: name + ID given) or the member of the caller's own
        application (``member``: someone else's is 404, like none)."""
        await self.consents.require(user_id, "face")
        given = {"name": name, "id_type": id_type, "id_number": id_number}
        if purpose == "realname":
            _require(given, extra={"application_id": application_id})
            assert name is not None and id_type is not None and id_number is not None
            person_name = name.strip()
            person_id = parse_id(id_type, id_number, today=cn_today(self.clock())).id_number
        else:
            _require({"application_id": application_id}, extra=given)
            person_name, person_id = await self._member_of(user_id, str(application_id))
        limits = self.limits
        await hit(
            self.redis,
            f"face:sessions:{user_id}",
            limit=limits.sessions_per_window,
            per_seconds=limits.sessions_window_seconds,
        )
        try:
            key = await self._with_token(
                lambda token: self.wechat.face_user_id_key(
                    token, name=person_name, id_card_number=person_id
                )
            )
        except WeChatError as err:
            log.warning("face session not opened: wechat errcode %s", err.errcode)
            raise face_busy() from None
        person = _person(person_name, person_id)
        ttl = key.expires_in + limits.max_age_seconds
        record = {
            "u": user_id,
            "id": person.id_md5,
            "nm": person.name_md5,
            "p": purpose,
            "a": application_id if purpose == "member" else None,
        }
        # two Redis Cluster slots: not MULTI; a failed write raises, no key is handed out
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(_session_key(key.user_id_key), json.dumps(record), ex=ttl)
            # the demo hint: whom the user's latest session for this person names
            pipe.set(_latest_key(user_id, person), key.user_id_key, ex=key.expires_in)
            await pipe.execute()
        return {"user_id_key": key.user_id_key, "expires_in": key.expires_in}

    async def _member_of(self, user_id: int, application_id: str) -> tuple[str, str]:
        """The member's name and ID number from the caller's own application."""
        app_uuid = parse_uuid(application_id)
        app = (
            await Application.get_or_none(id=app_uuid, binder_id=user_id)
            if app_uuid is not None
            else None
        )
        if app is None:
            raise DomainError("NOT_FOUND", "申请不存在")
        return (
            self.pii.decrypt(app.member_name_enc, purpose="name"),
            self.pii.decrypt(app.id_number_enc, purpose="id_number"),
        )

    # ---- step 2: the result -----------------------------------------------------------

    async def check(
        self,
        user_id: int,
        verify_result: str,
        *,
        name: str,
        id_number: str,
        purpose: Purpose,
    ) -> bool:
        """Whether ``verify_result`` is a passed check of this person on the caller's
        phone, redeemed for the first time (module docstring); SYSTEM_BUSY when WeChat
        cannot say, with nothing changed."""
        openid = await User.filter(id=user_id).first().values_list("openid", flat=True)
        if openid is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
        person = _person(name, id_number)
        guard = _used_key(user_id, person, verify_result)
        ttl = self.limits.max_age_seconds + CLOCK_SKEW_SECONDS + 300
        if not await self.redis.set(guard, "1", nx=True, ex=ttl):
            log.info("face check refused: verify result already redeemed by this user")
            return False
        latest = await self.redis.get(_latest_key(user_id, person))
        expect = (
            FaceExpectation(str(openid), user_id_key=_text(latest))
            if latest
            else FaceExpectation(str(openid), name=name, id_card_number=id_number)
        )
        try:
            info = await self._with_token(
                lambda token: self.wechat.face_identify_info(token, verify_result, expect=expect)
            )
        except WeChatError as err:
            if err.errcode in DEAD_RESULT_ERRCODES:
                log.info("face check refused: wechat errcode %s", err.errcode)
                return False
            await self.redis.delete(guard)  # nothing was redeemed: the user may try again
            log.warning("face check unavailable: wechat errcode %s", err.errcode)
            raise face_busy() from None
        refusal = await self._refusal(info, user_id, str(openid), name, id_number, person, purpose)
        if refusal is not None:
            log.info("face check refused: %s", refusal)
            return False
        return True

    async def _refusal(
        self,
        info: FaceIdentifyInfo,
        user_id: int,
        openid: str,
        name: str,
        id_number: str,
        person: _Person,
        purpose: Purpose,
    ) -> str | None:
        """Why this answer is no passed check of the person on the caller's phone; None
        when it is one."""
        if not info.passed:
            return f"identify_ret {info.identify_ret}"
        if info.openid != openid:
            return "checked on another user's phone"
        if not info.is_person(name, id_number):
            return "checked another person"
        age = self.clock().timestamp() - info.finish_time
        if age > self.limits.max_age_seconds or age < -CLOCK_SKEW_SECONDS:
            return f"finish_time {int(age)} s old"
        if info.user_id_key:
            raw = await self.redis.get(_session_key(info.user_id_key))
            record = json.loads(raw) if raw else None
            if record is None:
                return "session not opened here or expired"
            if record.get("u") != user_id:
                return "session opened by another user"
            if (record.get("id"), record.get("nm")) != (person.id_md5, person.name_md5):
                return "session opened for another person"
            if record.get("p") != purpose:
                return f"session opened for {record.get('p')}, used for {purpose}"
        return None

    # ---- the access token ---------------------------------------------------------------

    async def _with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """``call`` with the mini-program's access token; once more with a fresh token
        when WeChat rejected it (40001 / 40014 / 42001)."""
        token = await self.tokens.get()
        try:
            return await call(token)
        except WeChatError as err:
            if not err.token_invalid:
                raise
        return await call(await self.tokens.invalidate(token))


def _require(given: dict[str, str | None], *, extra: dict[str, str | None]) -> None:
    """The fields a purpose needs are there, and none of another purpose's (422)."""
    fields = {k: "REQUIRED" for k, v in given.items() if v is None or not str(v).strip()}
    fields.update({k: "UNKNOWN_FIELD" for k, v in extra.items() if v is not None})
    if fields:
        raise DomainError("VALIDATION_FAILED", "提交的信息有误,请检查后重试", fields=fields)


def _person(name: str, id_number: str) -> _Person:
    id_md5, name_md5 = face_person_md5s(name, id_number)
    return _Person(id_md5, name_md5)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _session_key(user_id_key: str) -> str:
    return "face:session:" + hashlib.sha256(user_id_key.encode()).hexdigest()


def _latest_key(user_id: int, person: _Person) -> str:
    return f"face:latest:{user_id}:{person.id_md5}"


def _used_key(user_id: int, person: _Person, verify_result: str) -> str:
    digest = hashlib.sha256(verify_result.encode()).hexdigest()
    return f"face:used:{user_id}:{person.id_md5}:{digest}"
