"""Notice and separate consent per purpose (PIPL art. 14, 17, 29, 30; issue #12).

The privacy notice is a versioned legal text (``config/privacy_notice.toml``, loaded by the
one loader, ``server.domain.documents``) with one text per purpose. Accepting it records
the notice version and hash (``PrivacyNoticeAcceptance``) and one ``Consent`` row per
purpose chosen, with the SHA-256 of that purpose's text, the time, the client address and
user agent — like the 承诺书.

Purposes and what they gate:

* ``face`` — the face check (real-name verification, face sessions, the member's check at
  submit): the caller must have consented (opt-in);
* ``id_documents`` — creating an application and uploading materials (opt-in);
* ``medical_records`` — a binder sees the member's spending: stopped when the member (a
  user) withdrew it; a member without an account never withdrew (the binder's 承诺书
  covers it);
* ``notices`` — receiving notices: stopped (and pending ones cancelled) when withdrawn.

A consent stays in force under a newer notice version as long as its purpose's text is
the same; a purpose whose text changed needs consent again (``renewal_needed``). A use
without its consent is 403 ``CONSENT_REQUIRED`` naming the purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

from tortoise.transactions import in_transaction

from server.domain import notices_outbox
from server.domain.clock import Clock, cn_iso_or_none, utc_now
from server.domain.documents import DocumentBook, LegalText, shipped
from server.domain.errors import DomainError
from server.domain.models import Consent, PrivacyNoticeAcceptance, User
from server.privacy import records

__all__ = ["NOTICE", "OPT_IN", "PURPOSES", "ConsentService", "consent_required"]

NOTICE = "privacy_notice"
PURPOSES: tuple[str, ...] = ("face", "id_documents", "medical_records", "notices")
#: Purposes a use needs granted; the others stop a use once withdrawn (module docstring).
OPT_IN: frozenset[str] = frozenset({"face", "id_documents"})

_FIX = "请在「我的数据与隐私 → 隐私授权」中阅读告知书并同意此项后再试。"

# What withdrawing a purpose does, said to the user (the DELETE answer).
_EFFECTS: Mapping[str, str] = {
    "face": "已撤回人脸识别授权:实名认证和为家人办理绑定时将不能使用人脸核验。本服务不保存人脸图像。",
    "id_documents": "已撤回证件材料授权:不能再创建绑定申请或上传材料;已上传的材料按告知书的期限删除,注销账户时立即删除。",
    "medical_records": "已撤回:绑定您的家人将不能再查看您的就医结算记录和余额。绑定关系和医保码不受影响。",
    "notices": "已撤回:我们不再为您生成新的通知,尚未发出的通知已取消。",
}


def consent_required(purpose: str, title: str, *, renewal: bool = False) -> DomainError:
    """403 ``CONSENT_REQUIRED`` naming the purpose (``purpose`` in the error body)."""
    what = f"「{title}」"
    message = (
        f"{what}的说明已更新,请重新阅读并同意后再使用此功能"
        if renewal
        else f"使用此功能需要您单独同意{what}"
    )
    return DomainError(
        "CONSENT_REQUIRED",
        message,
        fields={"purpose": "CONSENT_REQUIRED"},
        detail={"purpose": purpose, "renewal_needed": renewal, "fix": _FIX},
    )


class ConsentService:
    """The privacy notice in force and each user's consents (``keys.consents_key``).

    ``book`` defaults to the shipped notice, ``clock`` to the wall clock; tests inject a
    book with a newer version and move the clock to its publication.
    """

    def __init__(self, *, book: DocumentBook | None = None, clock: Clock | None = None) -> None:
        self.book = book or shipped(NOTICE)
        self.clock: Clock = clock or utc_now
        for version in self.book.versions:
            unknown = {p.id for p in version.purposes} - set(PURPOSES)
            if unknown:
                raise ValueError(f"{NOTICE} {version.version}: unknown purposes {sorted(unknown)}")
        # what withdrawing a purpose does beyond recording it (in its transaction)
        self.on_withdraw: dict[str, Callable[[int], Awaitable[Any]]] = {
            "notices": lambda uid: notices_outbox.cancel_pending(uid, reason="用户已撤回通知授权"),
        }

    # -- the notice -----------------------------------------------------------------
    def notice(self) -> LegalText:
        return self.book.current(self.clock())

    def notice_view(self) -> dict[str, Any]:
        """GET /privacy/notice: ``{version, title, text, sha256, purposes: [{id, title, text}]}``."""
        n = self.notice()
        return {**n.as_dict(), "purposes": [p.as_dict() for p in n.purposes]}

    def _title(self, purpose: str) -> str:
        p = self.notice().purpose(purpose)
        return p.title if p is not None else purpose

    # -- consenting -----------------------------------------------------------------
    async def accept(
        self,
        user_id: int,
        *,
        version: str,
        sha256: str,
        purposes: Iterable[str],
        ip: str | None,
        user_agent: str | None,
    ) -> dict[str, Any]:
        """Record that the user accepted the notice in force and consented to ``purposes``
        (each its own row). Purposes not named are left as they are (withdrawing is
        ``withdraw``). A purpose already in force under the same text gets no new row."""
        now = self.clock()
        state = self.book.check_signed(version=version, sha256=sha256, now=now)
        if state == "unknown":
            raise DomainError(
                "PRIVACY_NOTICE_MISMATCH",
                "告知书版本或内容校验值不正确,请重新打开隐私告知页面",
                fields={"sha256": "PRIVACY_NOTICE_MISMATCH"},
            )
        if state == "outdated":
            raise DomainError(
                "PRIVACY_NOTICE_OUTDATED",
                "告知书已更新,请阅读新版本后再同意",
                detail={"current_version": self.notice().version},
            )
        notice = self.book.get(version)
        assert notice is not None
        chosen = list(dict.fromkeys(purposes))
        if any(notice.purpose(p) is None for p in chosen):
            raise DomainError(
                "VALIDATION_FAILED",
                "授权项无效",
                fields={"purposes": "UNKNOWN_PURPOSE"},
            )
        ip, user_agent = (ip or None), ((user_agent or "")[:512] or None)
        async with in_transaction():
            # one accept at a time per user: no two rows for the same purpose and text
            user = await User.filter(id=user_id).select_for_update().only("id").first()
            if user is None:
                raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
            await PrivacyNoticeAcceptance.create(
                user_id=user_id,
                notice_version=notice.version,
                notice_sha256=notice.sha256,
                accepted_at=now,
                ip=ip,
                user_agent=user_agent,
            )
            in_force = await records.latest(user_id)
            for pid in chosen:
                text = notice.purpose(pid)
                assert text is not None
                c = in_force.get(pid)
                if c is not None and c.withdrawn_at is None and c.purpose_sha256 == text.sha256:
                    continue
                await Consent.create(
                    user_id=user_id,
                    purpose=pid,
                    notice_version=notice.version,
                    notice_sha256=notice.sha256,
                    purpose_sha256=text.sha256,
                    accepted_at=now,
                    ip=ip,
                    user_agent=user_agent,
                )
        return await self.status(user_id)

    async def status(self, user_id: int) -> dict[str, Any]:
        """GET /privacy/consents: ``{version, current_version, items: [...]}`` — ``version``
        is the notice version the user accepted last (None: never), ``items`` one per
        purpose of the notice in force (and any other the user once consented to)."""
        notice = self.notice()
        in_force = await records.latest(user_id)
        accepted = (
            await PrivacyNoticeAcceptance.filter(user_id=user_id)
            .order_by("-id")
            .limit(1)
            .values_list("notice_version", flat=True)
        )
        last = accepted[0] if accepted else None
        ids = [p.id for p in notice.purposes] + [p for p in in_force if notice.purpose(p) is None]
        items = []
        for pid in ids:
            c = in_force.get(pid)
            text = notice.purpose(pid)
            granted = c is not None and c.withdrawn_at is None
            items.append(
                {
                    "purpose": pid,
                    "title": text.title if text is not None else pid,
                    "version": c.notice_version if c is not None else None,
                    "granted": granted,
                    "accepted_at": cn_iso_or_none(c.accepted_at) if c is not None else None,
                    "withdrawn_at": cn_iso_or_none(c.withdrawn_at) if c is not None else None,
                    "renewal_needed": bool(
                        granted and c is not None and (text is None or c.purpose_sha256 != text.sha256)
                    ),
                }
            )
        return {"version": last, "current_version": notice.version, "items": items}

    async def withdraw(self, user_id: int, purpose: str) -> dict[str, Any]:
        """Withdraw one purpose (PIPL art. 15): its use stops from now on; withdrawing
        what is not granted changes nothing. 404 for a purpose that does not exist."""
        if purpose not in PURPOSES:
            raise DomainError("PURPOSE_NOT_FOUND", "没有这个授权项")
        now = self.clock()
        async with in_transaction():
            c = (await records.latest(user_id, purpose=purpose)).get(purpose)
            if c is not None and c.withdrawn_at is None:
                await Consent.filter(id=c.id, withdrawn_at__isnull=True).update(withdrawn_at=now)
                c.withdrawn_at = now
            effect = self.on_withdraw.get(purpose)
            if effect is not None:
                await effect(user_id)
        return {
            "purpose": purpose,
            "title": self._title(purpose),
            "granted": False,
            "withdrawn_at": cn_iso_or_none(c.withdrawn_at) if c is not None else None,
            "effect": _EFFECTS[purpose],
        }

    async def withdraw_all(self, user_id: int) -> int:
        """Every consent in force withdrawn (account deletion); returns how many."""
        now = self.clock()
        ids = [c.id for c in (await records.latest(user_id)).values() if c.withdrawn_at is None]
        if not ids:
            return 0
        return await Consent.filter(id__in=ids, withdrawn_at__isnull=True).update(withdrawn_at=now)

    # -- enforcement ----------------------------------------------------------------
    async def require(self, user_id: int, purpose: str) -> None:
        """The use of ``purpose`` by ``user_id`` is allowed now, else 403 CONSENT_REQUIRED.

        Opt-in purposes need a consent in force whose text is the current one; the others
        are refused only once withdrawn (module docstring)."""
        c = (await records.latest(user_id, purpose=purpose)).get(purpose)
        if purpose not in OPT_IN:
            if c is not None and c.withdrawn_at is not None:
                raise consent_required(purpose, self._title(purpose))
            return
        text = self.notice().purpose(purpose)
        if c is not None and c.withdrawn_at is None and text is not None and c.purpose_sha256 == text.sha256:
            return
        renewal = c is not None and c.withdrawn_at is None
        raise consent_required(purpose, self._title(purpose), renewal=renewal)

    @staticmethod
    async def withdrawn(user_ids: Iterable[int], purpose: str) -> set[int]:
        """Of ``user_ids``, those who withdrew ``purpose``."""
        return await records.withdrawn_users(user_ids, purpose)

    async def require_member_records(self, member_person_id: int) -> None:
        """A binder may see the spending of the insured person ``member_person_id`` unless
        the member, as a user of ours, withdrew ``medical_records`` (403 naming it: the
        binder sees why)."""
        users = cast(list[int], await User.filter(person_id=member_person_id).values_list("id", flat=True))
        if await records.withdrawn_users(users, "medical_records"):
            err = consent_required("medical_records", self._title("medical_records"))
            err.message = "家人已撤回「家人查看我的就医结算记录」授权,暂时不能查看其就医记录和余额"
            err.detail = {
                "purpose": "medical_records",
                "renewal_needed": False,
                "fix": "这是家人本人的选择;如需查看,请家人在小程序「我的数据与隐私」中重新同意此项。",
            }
            raise err
