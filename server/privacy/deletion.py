"""``DELETE /api/v1/me``: withdraw every consent and delete the account (PIPL art. 15, 47).

What happens, in this order, each step idempotent and recorded when done
(``AccountDeletion.steps_done``):

0. **start** — one transaction: the ``AccountDeletion`` row (state ``started``) and the
   login door closed (the WeChat openid replaced by a random tombstone, the session key
   dropped): the same WeChat user logging in again gets a new, empty account, never a
   half-deleted one;
1. ``sessions`` — every login family revoked: access and refresh tokens die at once;
2. ``bindings`` — every 亲情账户 binding the user holds or is the member of ends, through
   the family service's unbind (the same events and notices as any unbind);
3. ``authorizations`` — every 家庭共济 authorization the user gave or receives ends,
   unused 共济额度 back to the authorizer (``mutual_aid.end_for_account_deletion``);
4. ``files`` — uploaded materials of the user's applications (and of others' applications
   about the user) and the user's 承诺书 signature images removed from storage; each
   material logged in ``material_purges``;
5. ``applications`` — open ones cancelled; personal fields of every application made by
   or about the user replaced by encrypted empty values, blind indexes cleared, free-text
   notes dropped;
6. ``notices`` — pending notices cancelled, the data of all of them dropped; subscription
   grants and refused-共济 records deleted;
7. ``consents`` — every consent withdrawn; the client address and user agent of consents,
   notice acceptances and 承诺书 signatures cleared;
8. ``followers`` — the official-account link (same unionid) deleted;
9. ``profile`` — name, ID, phone, unionid, the link to the registry person cleared, and
   the deletion marked ``done`` in the same transaction.

A crash half-way leaves ``started`` with the steps done so far: the next ``DELETE
/api/v1/me`` (while a token still works) or the privacy job (:func:`DeletionService.resume`)
runs the rest. A Redis lock keeps two runners of one deletion apart.

Kept, pseudonymised (:data:`KEPT`): settlements and the ledger (linked to the registry
person, never to the account), the registry's own record, the history of bindings and
authorizations as ids and dates, the consent and 承诺书 records without address, the
staff audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from server.domain import mutual_aid, notices_outbox
from server.domain.clock import SHANGHAI, Clock, cn_iso, cn_iso_or_none, utc_now
from server.domain.errors import DomainError
from server.domain.models import (
    AccountDeletion,
    Application,
    ApplicationEvent,
    Binding,
    CommitmentSignature,
    Consent,
    Material,
    MaterialPurge,
    MutualAidRefusal,
    Notice,
    OfficialFollower,
    PrivacyNoticeAcceptance,
    SubscriptionGrant,
    User,
)
from server.domain.pii import PiiCipher
from server.privacy.consent import ConsentService

__all__ = ["FINAL_STATES", "KEPT", "DeletionService"]

log = logging.getLogger(__name__)

#: States after which an application waits for nobody (anything else is still open).
FINAL_STATES: frozenset[str] = frozenset({"active", "failed", "unbound", "cancelled"})
CANCELLED = "cancelled"
LOCK_SECONDS = 300

KEPT: tuple[dict[str, str], ...] = (
    {
        "what": "settlements",
        "text": "就医结算记录和医保个人账户收支记录(含家庭共济支出)去标识化后保存,只与参保登记的人员编号关联,不再与您的账户关联。",
        "why": "医保基金结算和会计档案依法须保存(《医疗保障基金使用监督管理条例》《会计档案管理办法》);"
        "法定保存期限未届满的,除存储和必要的安全保护外停止处理(《个人信息保护法》第四十七条第二款)。",
    },
    {
        "what": "registry",
        "text": "您的参保登记信息由医保经办机构管理,不随本账户删除。",
        "why": "参保登记是医保部门的业务档案,不是本服务为您的账户收集的信息。",
    },
    {
        "what": "history",
        "text": "曾经存在的绑定和共济授权只保留编号、关系和起止时间,不含姓名和证件号码。",
        "why": "用于医保基金监管和纠纷处理(例如核查冒用医保凭证)。",
    },
    {
        "what": "consents",
        "text": "您同意隐私告知书、签署承诺书的记录(版本、内容校验值、时间)保留,不含网络地址和设备信息。",
        "why": "证明处理您个人信息时已取得同意、绑定时已签署承诺书。",
    },
    {
        "what": "staff_audit",
        "text": "医保经办工作人员查看个人信息的审计记录保留。",
        "why": "个人信息安全保护的审计要求(《个人信息保护法》第五十一条),审计记录不可修改或删除。",
    },
)


class Unbinder(Protocol):
    """The family service's unbind (``server.domain.family``), as a deletion uses it."""

    async def unbind(self, user_id: int, binding_id: str, *, as_member: bool = False) -> object: ...


class SessionRevoker(Protocol):
    async def revoke_user(self, user_id: int) -> int: ...


class FileStore(Protocol):
    async def delete(self, key: str) -> None: ...


StepFn = Callable[["_Run"], Awaitable[int]]


class _Run:
    """One run of the remaining steps of one deletion."""

    def __init__(self, service: DeletionService, deletion: AccountDeletion, user: User) -> None:
        self.service = service
        self.deletion = deletion
        self.user = user
        self.uid = user.id
        self.person_id: int | None = user.person_id

    def about_me(self) -> Q:
        """Applications the user made, or whose member is the user."""
        q = Q(binder_id=self.uid)
        if self.person_id is not None:
            q |= Q(member_id=self.person_id)
        if self.user.id_hash:
            q |= Q(id_hash=self.user.id_hash)
        return q


class DeletionService:
    """Deletes accounts (``keys.deletion_key``)."""

    def __init__(
        self,
        *,
        auth: SessionRevoker,
        family: Unbinder,
        storage: FileStore,
        consents: ConsentService,
        pii: PiiCipher,
        redis: Any,
        clock: Clock | None = None,
    ) -> None:
        self.auth = auth
        self.family = family
        self.storage = storage
        self.consents = consents
        self.pii = pii
        self.redis = redis
        self.clock: Clock = clock or utc_now
        # the steps in order; a test replaces one to inject a crash
        self.steps: dict[str, StepFn] = {
            "sessions": _sessions,
            "bindings": _bindings,
            "authorizations": _authorizations,
            "files": _files,
            "applications": _applications,
            "notices": _notices,
            "consents": _consents,
            "followers": _followers,
            "profile": _profile,
        }

    # -- entry points ---------------------------------------------------------------
    async def delete_account(self, user_id: int) -> dict[str, Any]:
        """``DELETE /api/v1/me``: start (or resume) the deletion and run its steps; the
        answer says what happened and what is kept. A step that fails leaves the deletion
        ``in_progress`` (it is finished later); the start itself failing is an error."""
        deletion = await self._start(user_id)
        deletion = await self._run(deletion)
        return self.answer(deletion)

    async def resume(self, *, older_than_seconds: float) -> int:
        """Finish deletions still ``started`` this long after they began (the privacy
        job); returns how many it finished."""
        from datetime import timedelta

        # SQLite compares the stored text: the bound in the zone it is stored in
        cutoff = (self.clock() - timedelta(seconds=older_than_seconds)).astimezone(SHANGHAI)
        finished = 0
        for deletion in await AccountDeletion.filter(state="started", started_at__lte=cutoff).order_by("id"):
            done = await self._run(deletion)
            finished += done.state == "done"
        return finished

    # -- the run --------------------------------------------------------------------
    async def _start(self, user_id: int) -> AccountDeletion:
        import secrets

        async with in_transaction():
            user = await User.filter(id=user_id).select_for_update().first()
            if user is None:
                raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
            deletion = await AccountDeletion.get_or_none(user_id=user_id)
            if deletion is None:
                deletion = await AccountDeletion.create(
                    user_id=user_id, state="started", steps_done=[], summary={}, started_at=self.clock()
                )
                # the login door closes with the start: a new login is a new account
                await User.filter(id=user_id).update(
                    openid=f"deleted:{secrets.token_hex(16)}", session_key_enc=None
                )
        return deletion

    async def _run(self, deletion: AccountDeletion) -> AccountDeletion:
        if deletion.state == "done":
            return deletion
        lock = f"privacy:deletion:{deletion.user_id}"
        if not await self.redis.set(lock, b"1", nx=True, ex=LOCK_SECONDS):
            return deletion  # another runner is on it
        try:
            await AccountDeletion.filter(id=deletion.id).update(attempts=deletion.attempts + 1)
            for name, step in self.steps.items():
                deletion = await AccountDeletion.get(id=deletion.id)
                if name in deletion.steps_done:
                    continue
                user = await User.get(id=deletion.user_id)
                try:
                    count = await step(_Run(self, deletion, user))
                except Exception as err:  # logged with its traceback; the next run resumes here
                    log.exception(
                        "account deletion %s: step %s failed (%s); it resumes later",
                        deletion.id,
                        name,
                        type(err).__name__,
                    )
                    return await AccountDeletion.get(id=deletion.id)
                if name != "profile":  # profile records itself, with the final state
                    await _record(deletion.id, name, count)
            return await AccountDeletion.get(id=deletion.id)
        finally:
            await self.redis.delete(lock)

    # -- the answer -----------------------------------------------------------------
    def answer(self, deletion: AccountDeletion) -> dict[str, Any]:
        """What happened and what is kept, and why (the 202 body)."""
        s = deletion.summary or {}
        done = deletion.state == "done"
        lines = [
            ("sessions", f"已退出全部登录({s.get('sessions', 0)} 个),登录凭证立即失效。"),
            (
                "bindings",
                f"已解除 {s.get('bindings', 0)} 个亲情账户绑定(您绑定的家人和绑定您的家人),已按解绑流程通知相关家人。",
            ),
            (
                "authorizations",
                f"已终止 {s.get('authorizations', 0)} 个家庭共济授权,未使用的共济额度已退回授权人个人账户。",
            ),
            ("files", f"已删除 {s.get('files', 0)} 份上传的证件材料和签名图片。"),
            ("applications", f"已取消或匿名化 {s.get('applications', 0)} 个绑定申请中的个人信息。"),
            ("notices", f"已取消未发送的通知,删除通知内容和消息订阅({s.get('notices', 0)} 条)。"),
            ("consents", f"已撤回全部隐私授权({s.get('consents', 0)} 项)。"),
            ("followers", "已删除与公众号的关联。"),
            ("profile", "已删除您的姓名、证件号码、手机号、微信标识及与参保人员的关联。"),
        ]
        return {
            "state": "done" if done else "in_progress",
            "message": "账户已注销。"
            if done
            else "账户注销已开始,登录已失效;其余步骤会自动完成,无需再次操作。",
            "started_at": cn_iso(deletion.started_at),
            "finished_at": cn_iso_or_none(deletion.finished_at),
            "done": [
                {"what": what, "text": text}
                for what, text in lines
                if what in (deletion.steps_done or [])
            ],
            "kept": list(KEPT),
        }


async def _record(deletion_id: int, step: str, count: int, **extra: Any) -> None:
    d = await AccountDeletion.get(id=deletion_id)
    steps = list(d.steps_done or [])
    if step not in steps:
        steps.append(step)
    summary = {**(d.summary or {}), step: count}
    await AccountDeletion.filter(id=deletion_id).update(steps_done=steps, summary=summary, **extra)


# -- the steps (each idempotent; returns a count for the answer) -----------------------


async def _sessions(run: _Run) -> int:
    return await run.service.auth.revoke_user(run.uid)


async def _bindings(run: _Run) -> int:
    ended = 0
    ids = await Binding.filter(binder_id=run.uid, state="active").values_list("id", flat=True)
    for bid in ids:
        ended += await _unbind(run, str(bid), as_member=False)
    if run.person_id is not None:
        ids = await Binding.filter(member_id=run.person_id, state="active").values_list("id", flat=True)
        for bid in ids:
            ended += await _unbind(run, str(bid), as_member=True)
    return ended


async def _unbind(run: _Run, binding_id: str, *, as_member: bool) -> int:
    try:
        await run.service.family.unbind(run.uid, binding_id, as_member=as_member)
    except DomainError as err:
        if err.code in ("BINDING_NOT_ACTIVE", "NOT_FOUND"):  # ended meanwhile
            return 0
        raise
    return 1


async def _authorizations(run: _Run) -> int:
    return await mutual_aid.end_for_account_deletion(user_id=run.uid, person_id=run.person_id)


async def _files(run: _Run) -> int:
    storage = run.service.storage
    now = run.service.clock()
    removed = 0
    apps = {a.id: a for a in await Application.filter(run.about_me())}
    for m in await Material.filter(application_id__in=list(apps)).order_by("created_at"):
        await storage.delete(m.storage_key)  # first the file: a row never outlives it here
        app = apps[m.application_id]
        async with in_transaction():
            if await Material.filter(id=m.id).delete():
                await MaterialPurge.create(
                    material_id=m.id,
                    application_id=app.id,
                    kind=m.kind,
                    size=m.size,
                    reason="account_deleted",
                    rule=None,
                    application_state=app.state,
                    decided_at=app.decided_at,
                    purged_at=now,
                )
                removed += 1
    for s in await CommitmentSignature.filter(user_id=run.uid, signature_image_key__isnull=False):
        await storage.delete(str(s.signature_image_key))
        await CommitmentSignature.filter(id=s.id).update(signature_image_key=None)
        removed += 1
    return removed


async def _applications(run: _Run) -> int:
    pii = run.service.pii
    blank_name = pii.encrypt("", purpose="name")
    blank_id = pii.encrypt("", purpose="id_number")
    apps = await Application.filter(run.about_me())
    async with in_transaction():
        for app in apps:
            if app.state not in FINAL_STATES:
                # the state machine's own moves do not cancel; a deleted account does
                await ApplicationEvent.create(
                    application_id=app.id,
                    from_state=app.state,
                    to_state=CANCELLED,
                    actor="system:account_deleted",
                    code="ACCOUNT_DELETED",
                )
            await Application.filter(id=app.id).update(
                state=app.state if app.state in FINAL_STATES else CANCELLED,
                member_name_enc=blank_name,
                member_name_hash="",
                id_number_enc=blank_id,
                id_hash="",
                phone_enc=None,
                reason="",
                failure_message=None,
            )
            await ApplicationEvent.filter(application_id=app.id).update(note=None)
    return len(apps)


async def _notices(run: _Run) -> int:
    cancelled = await notices_outbox.cancel_pending(run.uid, reason="账户已注销")
    cleared = await Notice.filter(recipient_id=run.uid).update(data={})
    await SubscriptionGrant.filter(user_id=run.uid).delete()
    await MutualAidRefusal.filter(user_id=run.uid).delete()
    return max(cancelled, cleared)


async def _consents(run: _Run) -> int:
    withdrawn = await run.service.consents.withdraw_all(run.uid)
    await Consent.filter(user_id=run.uid).update(ip=None, user_agent=None)
    await PrivacyNoticeAcceptance.filter(user_id=run.uid).update(ip=None, user_agent=None)
    await CommitmentSignature.filter(user_id=run.uid).update(ip=None, user_agent=None)
    return withdrawn


async def _followers(run: _Run) -> int:
    if not run.user.unionid:
        return 0
    return await OfficialFollower.filter(unionid=run.user.unionid).delete()


async def _profile(run: _Run) -> int:
    async with in_transaction():
        await User.filter(id=run.uid).update(
            unionid=None,
            session_key_enc=None,
            realname_verified=False,
            realname_verified_at=None,
            name_enc=None,
            id_type=None,
            id_number_enc=None,
            id_hash=None,
            phone_enc=None,
            person_id=None,
        )
        await _record(run.deletion.id, "profile", 1, state="done", finished_at=run.service.clock())
    return 1
