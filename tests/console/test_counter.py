"""窗口代办 through HTTP: a clerk binds, unbinds, 代激活s and gives or ends a 家庭共济
authorization for the person at the counter — roles and regions on every action, CSRF,
the mini-program's policy limits holding at the counter, the member's notice, the audit
rows, and the WeChat account that later adopts the counter account."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.counter_accounts import COUNTER_PREFIX
from server.domain.models import (
    Application,
    ApplicationEvent,
    Authorization,
    Binding,
    CommitmentSignature,
    InsuredPerson,
    Notice,
    StaffAuditEntry,
    User,
    VoucherActivation,
)
from server.domain.registry import find_by_id
from tests.console.conftest import Browser, add_staff, csrf_of, login
from tests.factories import add_binding, add_person, bearer, verified_user
from tests.family.helpers import (
    ALICE,
    DAVE,
    FATHER,
    GRANDMA,
    HK,
    MOTHER,
    WIFE,
    load_registry,
    png,
)


async def _person(capp: web.Application, who: tuple[str, str, str]) -> InsuredPerson:
    p = await find_by_id(capp[keys.pii_key], who[1], who[2])
    assert p is not None
    return p


def bind_form(
    capp: web.Application,
    csrf: str,
    member: tuple[str, str, str],
    relationship: str,
    *,
    seen: tuple[str, ...] = ("household_register",),
    signature: bytes | None = None,
    on_paper: bool = True,
    verification: str = "in_person",
    consent: bool = True,
    uploads: tuple[tuple[str, bytes], ...] = (),
) -> aiohttp.FormData:
    """The counter's binding form as the browser posts it (multipart)."""
    current = capp[keys.family_key].current_commitment()
    form = aiohttp.FormData()
    fields = {
        "csrf": csrf, "name": member[0], "id_type": member[1], "id_number": member[2],
        "relationship": relationship, "verification": verification,
        "commitment_version": current["version"], "commitment_sha256": current["sha256"],
    }
    for k, v in fields.items():
        form.add_field(k, v)
    if consent:
        form.add_field("consent_on_paper", "yes")
    if on_paper:
        form.add_field("signed_on_paper", "yes")
    for kind in seen:
        form.add_field("seen", kind)
    for i, (kind, data) in enumerate(uploads, start=1):
        form.add_field(f"kind_{i}", kind)
        form.add_field(f"file_{i}", data, filename=f"scan{i}.png", content_type="image/png")
    if signature is not None:
        form.add_field("signature", signature, filename="signature.png", content_type="image/png")
    return form


async def _clerk(console: TestClient, capp: web.Application, regions: str = "420100", name: str = "clerk") -> str:
    pw = await add_staff(capp, name, "counter", regions)
    return await login(console, name, pw)


async def _bind(console: TestClient, capp: web.Application, csrf: str, person: InsuredPerson,
                member: tuple[str, str, str], relationship: str, **kw: Any) -> tuple[int, str]:
    resp = await console.post(f"/review/counter/{person.id}/bind", data=bind_form(capp, csrf, member, relationship, **kw))
    return resp.status, await resp.text()


# -- binding ------------------------------------------------------------------------------


async def test_a_clerk_binds_for_a_person_without_wechat(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    mother_tokens = await verified_user(console, "mother", MOTHER)  # the member uses WeChat
    father = await _person(capp, FATHER)  # at the counter, no smartphone
    csrf = await _clerk(console, capp)
    status, html = await _bind(console, capp, csrf, father, MOTHER, "spouse",
                               signature=png(4, 2), on_paper=False, uploads=(("id_card_front", png(3, 3)),))
    assert status == 200, html
    assert "绑定成功" in html and "申请状态:已绑定" in html and "窗口代办绑定" in html
    assert MOTHER[0] not in html and MOTHER[2] not in html  # masked on the page

    # the binder: a counter account made from the registry record, verified, no WeChat
    account = await User.get(person_id=father.id)
    assert account.openid.startswith(COUNTER_PREFIX) and account.realname_verified and account.unionid is None
    assert account.id_hash == father.id_hash
    binding = await Binding.get(binder_id=account.id, state="active")
    mother = await _person(capp, MOTHER)
    assert binding.member_id == mother.id and binding.relationship == "spouse"

    # what the clerk did is on the application: the clerk, the document seen, the pad signature
    app = await Application.get(id=binding.application_id)
    events = await ApplicationEvent.filter(application_id=app.id).order_by("id")
    assert {e.actor for e in events if e.to_state in ("draft", "submitted")} == {"staff:clerk"}
    seen = [e.note for e in events if e.code == "DOCUMENT_SEEN"]
    assert seen == ["household_register"]
    sig = await CommitmentSignature.get(application_id=app.id)
    assert sig.signature_image_key is not None and sig.user_agent == "窗口代办 clerk"
    assert sig.version == capp[keys.family_key].current_commitment()["version"]

    # the member is told, as when bound from the mini-program
    notice = await Notice.get(kind="member_bound")
    assert notice.recipient_id == mother_tokens["user"]["id"]  # type: ignore[attr-defined]
    assert notice.data["binding_id"] == str(binding.id) and notice.data["binder_name"] == "张*国"

    # one audit row: staff X for person Y, codes and ids only
    entry = await StaffAuditEntry.get(action="counter_bind")
    assert entry.staff_name == "clerk" and entry.person_ref == f"person:{father.id}"
    assert entry.target_kind == "application" and entry.target_id == str(app.id)
    assert entry.detail["outcome"] == "active" and entry.detail["account"] == "created"
    assert entry.detail["member"] == f"person:{mother.id}" and entry.detail["seen"] == ["household_register"]
    assert entry.detail["uploaded"] == ["id_card_front"] and entry.detail["signature"] == "image"
    assert f"审计记录 #{entry.id}" in html
    # the person's page now lists the member with the actions on it
    assert "本人绑定的家人" in html and "李*英" in html and str(binding.id) in html


async def test_binding_at_the_counter_activates_the_members_voucher(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    wife = await _person(capp, WIFE)
    csrf = await _clerk(console, capp)
    status, html = await _bind(console, capp, csrf, wife, GRANDMA, "parent")
    assert status == 200 and "代激活医保电子凭证" in html, html
    grandma = await _person(capp, GRANDMA)
    assert grandma.voucher_activated
    act = await VoucherActivation.get(person_id=grandma.id)
    assert act.method == "counter" and act.staff == "clerk" and act.application_id is not None


async def test_member_not_present_goes_to_a_reviewer_with_what_the_clerk_saw(
    console: TestClient, capp: web.Application
) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    status, html = await _bind(console, capp, csrf, father, MOTHER, "spouse", verification="documents")
    assert status == 200 and "已提交审核" in html and "审核中" in html, html
    app = await Application.get(state="pending_review")
    rev = await add_staff(capp, "rev", "reviewer", "420100")
    await login(console, "rev", rev)
    detail = await (await console.get(f"/review/applications/{app.id}")).text()
    assert "窗口 clerk" in detail and "当面查验:户口本" in detail
    assert "纸质承诺书" in detail


async def test_refusals_show_code_and_message_and_leave_nothing_waiting(
    console: TestClient, capp: web.Application
) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    # no document at all: the policy's MATERIALS_MISSING; the application does not wait
    status, html = await _bind(console, capp, csrf, father, MOTHER, "spouse", seen=())
    assert status == 409 and "MATERIALS_MISSING" in html and "户口本" in html and "已撤销" in html
    assert await Application.filter(state="cancelled").count() == 1
    assert await Binding.all().count() == 0
    # neither a signature image nor the paper form
    status, html = await _bind(console, capp, csrf, father, MOTHER, "spouse", on_paper=False)
    assert status == 422 and "VALIDATION_FAILED" in html and "签名" in html
    # no consent on the paper notice
    status, html = await _bind(console, capp, csrf, father, MOTHER, "spouse", consent=False)
    assert status == 422 and "告知书" in html
    # the same relationship rules as the mini-program
    status, html = await _bind(console, capp, csrf, father, MOTHER, "sibling")
    assert status == 409 and "RELATIONSHIP_NOT_ALLOWED" in html
    # the person's own voucher first (as for a real-name verification)
    grandma = await _person(capp, GRANDMA)
    status, html = await _bind(console, capp, csrf, grandma, MOTHER, "child")
    assert status == 403 and "BINDER_NOT_VERIFIED" in html and "代激活" in html
    refused = await StaffAuditEntry.filter(action="counter_bind").order_by("id")
    assert [r.detail["code"] for r in refused] == [
        "MATERIALS_MISSING", "VALIDATION_FAILED", "VALIDATION_FAILED", "RELATIONSHIP_NOT_ALLOWED", "BINDER_NOT_VERIFIED"
    ]
    assert all(r.detail["outcome"] == "refused" and r.person_ref.startswith("person:") for r in refused)


async def test_five_members_per_binder_hold_at_the_counter(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    status, _ = await _bind(console, capp, csrf, father, MOTHER, "spouse")
    assert status == 200
    account = await User.get(person_id=father.id)
    for i in range(4):
        await add_binding(account.id, await add_person(capp, f"家人{i}", seq=f"{500 + i}"), "child")
    status, html = await _bind(console, capp, csrf, father, WIFE, "child")
    assert status == 409 and "MEMBER_LIMIT_REACHED" in html and "5" in html
    assert await Binding.filter(binder_id=account.id, state="active").count() == 5
    entry = await StaffAuditEntry.filter(action="counter_bind").order_by("-id").first()
    assert entry is not None and entry.detail["code"] == "MEMBER_LIMIT_REACHED"


async def test_two_binders_per_member_per_month_hold_at_the_counter(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    grandma = await _person(capp, GRANDMA)
    for who, person in (("alice", ALICE), ("wife", WIFE)):
        tokens = await verified_user(console, who, person)
        await add_binding(tokens["user"]["id"], grandma, "parent")
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    status, html = await _bind(console, capp, csrf, father, GRANDMA, "parent")
    assert status == 409 and "MONTHLY_BINDER_LIMIT" in html
    assert await Binding.filter(member_id=grandma.id, state="active").count() == 2


# -- unbinding and 代激活 ----------------------------------------------------------------------


async def test_unbind_either_side_at_the_counter(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    await verified_user(console, "mother", MOTHER)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    assert (await _bind(console, capp, csrf, father, MOTHER, "spouse"))[0] == 200
    binding = await Binding.get(state="active")
    resp = await console.post(f"/review/counter/{father.id}/unbind",
                              data={"csrf": csrf, "binding_id": str(binding.id), "side": "binder"})
    html = await resp.text()
    assert resp.status == 200 and "已解除绑定" in html and "窗口代办解绑" in html
    await binding.refresh_from_db()
    assert binding.state == "unbound" and binding.unbound_by == f"user:{binding.binder_id}@staff:clerk"
    assert await Notice.filter(kind="member_unbound").count() == 1
    entry = await StaffAuditEntry.get(action="counter_unbind")
    assert entry.target_kind == "binding" and entry.target_id == str(binding.id) and entry.person_ref == f"person:{father.id}"
    # again: already ended
    resp = await console.post(f"/review/counter/{father.id}/unbind",
                              data={"csrf": csrf, "binding_id": str(binding.id), "side": "binder"})
    assert resp.status == 409 and "BINDING_NOT_ACTIVE" in await resp.text()

    # the member side: a person removes someone who bound them (frees the month's slot)
    alice = await verified_user(console, "alice", ALICE)
    mine = await add_binding(alice["user"]["id"], await _person(capp, WIFE), "spouse")
    wife = await _person(capp, WIFE)
    resp = await console.post(f"/review/counter/{wife.id}/unbind",
                              data={"csrf": csrf, "binding_id": str(mine.id), "side": "member"})
    assert resp.status == 200, await resp.text()
    await mine.refresh_from_db()
    assert mine.state == "unbound" and mine.unbound_by.startswith("member:")  # type: ignore[union-attr]


async def test_counter_activates_the_persons_own_voucher_and_a_members(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    grandma = await _person(capp, GRANDMA)
    csrf = await _clerk(console, capp)
    resp = await console.post(f"/review/counter/{grandma.id}/activate", data={"csrf": csrf})
    html = await resp.text()
    assert resp.status == 200 and "代激活成功" in html and "窗口代激活电子凭证" in html
    await grandma.refresh_from_db()
    assert grandma.voucher_activated
    act = await VoucherActivation.get(person_id=grandma.id)
    assert act.method == "counter" and act.staff == "clerk" and act.activated_by_id is None  # type: ignore[attr-defined]
    resp = await console.post(f"/review/counter/{grandma.id}/activate", data={"csrf": csrf})
    assert resp.status == 409 and "VOUCHER_ALREADY_ACTIVATED" in await resp.text()

    # a member the person bound whose voucher is not activated
    father = await _person(capp, FATHER)
    assert (await _bind(console, capp, csrf, father, MOTHER, "spouse"))[0] == 200
    member = await add_person(capp, "张老太", seq="777")
    await InsuredPerson.filter(id=member.id).update(voucher_activated=False)
    account = await User.get(person_id=father.id)
    b = await add_binding(account.id, member, "parent")
    resp = await console.post(f"/review/counter/{father.id}/activate", data={"csrf": csrf, "binding_id": str(b.id)})
    assert resp.status == 200, await resp.text()
    act = await VoucherActivation.get(person_id=member.id)
    assert act.method == "counter" and act.activated_by_id == account.id  # type: ignore[attr-defined]
    entry = await StaffAuditEntry.filter(action="counter_activate").order_by("-id").first()
    assert entry is not None and entry.detail == {"outcome": "activated", "for": "member", "member": f"person:{member.id}"}


# -- 家庭共济 ------------------------------------------------------------------------------------


async def test_mutual_aid_authorization_at_the_counter(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    wife = await _person(capp, WIFE)  # 职工医保 with a personal account, Wuhan
    csrf = await _clerk(console, capp)
    data = {"csrf": csrf, "name": MOTHER[0], "id_type": MOTHER[1], "id_number": MOTHER[2], "relationship": "parent"}
    resp = await console.post(f"/review/counter/{wife.id}/authorize", data=data)
    assert resp.status == 422 and "告知书" in await resp.text()
    resp = await console.post(f"/review/counter/{wife.id}/authorize", data={**data, "notice_on_paper": "yes"})
    html = await resp.text()
    assert resp.status == 200 and "共济授权已生效" in html, html
    auth = await Authorization.get(state="active")
    account = await User.get(person_id=wife.id)
    assert auth.authorizer_id == account.id and account.openid.startswith(COUNTER_PREFIX)  # type: ignore[attr-defined]
    entry = await StaffAuditEntry.get(action="counter_authorize", target_id=str(auth.id))
    assert entry.person_ref == f"person:{wife.id}" and entry.detail["outcome"] == "active"
    # the same rules: already authorized; a 居民医保 person cannot authorize
    resp = await console.post(f"/review/counter/{wife.id}/authorize", data={**data, "notice_on_paper": "yes"})
    assert resp.status == 409 and "ALREADY_AUTHORIZED" in await resp.text()
    # Wuhan: no revocation within 3 months of the start
    resp = await console.post(f"/review/counter/{wife.id}/revoke", data={"csrf": csrf, "authorization_id": str(auth.id)})
    assert resp.status == 409 and "UNBIND_LOCKED" in await resp.text()
    from datetime import timedelta

    await Authorization.filter(id=auth.id).update(created_at=auth.created_at - timedelta(days=100))
    resp = await console.post(f"/review/counter/{wife.id}/revoke", data={"csrf": csrf, "authorization_id": str(auth.id)})
    assert resp.status == 200 and "共济授权已解除" in await resp.text()
    assert (await Authorization.get(id=auth.id)).state == "revoked"
    actions = await StaffAuditEntry.filter(action__in=["counter_authorize", "counter_revoke"]).order_by("id").values_list(
        "action", "detail"
    )
    assert [(a, d["outcome"]) for a, d in actions] == [
        ("counter_authorize", "refused"), ("counter_authorize", "active"), ("counter_authorize", "refused"),
        ("counter_revoke", "refused"), ("counter_revoke", "revoked"),
    ]


# -- roles, regions, CSRF -------------------------------------------------------------------------


ACTIONS = ("bind", "unbind", "activate", "authorize", "revoke")


async def test_only_counter_staff_of_the_region_act(console: TestClient, capp: web.Application, other_browser: Browser) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    far = await _person(capp, DAVE)  # 510100
    # a reviewer: 403 on every counter action, nothing done
    rev = await add_staff(capp, "rev", "reviewer", "000000")
    csrf = await login(console, "rev", rev)
    for action in ACTIONS:
        resp = await console.post(f"/review/counter/{father.id}/{action}", data={"csrf": csrf})
        assert resp.status == 403, action
    # a clerk of Hangzhou: a Wuhan person is "not found", like an unknown one
    b = other_browser
    page = await b.get("/review/login")
    zj = await add_staff(capp, "zj", "counter", "330100")
    await b.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "zj", "password": zj})
    zcsrf = csrf_of(await (await b.get("/review/counter")).text())
    for action in ACTIONS:
        data: Any = bind_form(capp, zcsrf, MOTHER, "spouse") if action == "bind" else {"csrf": zcsrf}
        resp = await b.post(f"/review/counter/{father.id}/{action}", data=data)
        assert resp.status == 404 and "未找到该参保人" in await resp.text(), action
    resp = await b.post("/review/counter/999999/activate", data={"csrf": zcsrf})
    assert resp.status == 404
    assert await Binding.all().count() == 0 and await User.filter(openid__startswith=COUNTER_PREFIX).count() == 0
    # an admin of the whole country acts anywhere (the counter is open to admins)
    boss = await add_staff(capp, "boss", "admin", "000000")
    bcsrf = await login(console, "boss", boss)
    status, html = await _bind(console, capp, bcsrf, far, HK, "spouse", seen=("travel_permit",))
    assert status == 200 and "已提交审核" in html  # a 港澳通行证: a reviewer decides, as in the app


async def test_every_counter_action_needs_the_csrf_token(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    for action in ACTIONS:
        for token in (None, "forged"):
            if action == "bind":
                form = bind_form(capp, token or "", MOTHER, "spouse")
            else:
                form = {"csrf": token} if token else {}
            resp = await console.post(f"/review/counter/{father.id}/{action}", data=form)
            assert resp.status == 403 and "页面已过期" in await resp.text(), (action, token)
    assert await Application.all().count() == 0 and await Binding.all().count() == 0
    assert await StaffAuditEntry.filter(action__startswith="counter_").count() == 0
    # with the session's token it goes through
    assert (await _bind(console, capp, csrf, father, MOTHER, "spouse"))[0] == 200


# -- the counter account, later in WeChat ------------------------------------------------------


async def test_wechat_verification_adopts_the_counter_account(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    father = await _person(capp, FATHER)
    csrf = await _clerk(console, capp)
    assert (await _bind(console, capp, csrf, father, MOTHER, "spouse"))[0] == 200
    counter_account = await User.get(person_id=father.id)
    # months later 张建国 gets a smartphone: logs in, verifies as himself
    tokens = await verified_user(console, "father", FATHER)
    me = tokens["user"]["id"]
    members = await (await console.get("/api/v1/family/members", headers=bearer(tokens))).json()
    assert [m["member"]["name"] for m in members["items"]] == ["李*英"]
    assert (await Binding.get(state="active")).binder_id == me  # type: ignore[attr-defined]
    await counter_account.refresh_from_db()
    assert counter_account.openid.startswith("merged:") and counter_account.id_hash is None
    assert (await User.get(id=me)).person_id == father.id  # type: ignore[attr-defined]
    # the counter now serves him as his WeChat account
    resp = await console.post("/review/counter/lookup",
                              data={"csrf": csrf, "id_type": FATHER[1], "id_number": FATHER[2], "name": FATHER[0]})
    assert "小程序用户(已实名)" in await resp.text()
    # a second WeChat account cannot take him over
    other = await verified_user_expect(console, "impostor", FATHER)
    assert other == 409


async def verified_user_expect(client: TestClient, user: str, person: tuple[str, str, str]) -> int:
    from tests.factories import login as app_login

    tokens = await app_login(client, user)
    resp = await client.post("/api/v1/me/realname", headers=bearer(tokens), json={
        "name": person[0], "id_type": person[1], "id_number": person[2], "face_token": "ok-face-impostor"})
    return resp.status
