"""What the domain tells the bot about a user's own attempts (server/domain/attempts.py),
and 家庭共济 refusals recorded for it (server/domain/mutual_aid.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain import attempts
from server.domain.family.states import STATES
from server.domain.models import (
    Application,
    ApplicationEvent,
    MutualAidRefusal,
    OfficialFollower,
    User,
)
from tests.bot.conftest import Wx
from tests.factories import add_person, authorize, bearer, login, verified_user

LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Application states the family code is adding for issue 11 (API.md v1.1); until it has
# them, the bot's names for them are checked against API.md's wording only.
EXPECTED_NEW_STATES = {"needs_action", "correction_requested"}


def test_the_bot_names_states_the_state_machine_has() -> None:
    missing = set(attempts.ATTEMPT_STATES) - set(STATES)
    assert missing <= EXPECTED_NEW_STATES, missing


async def _application(
    app: web.Application, binder: User, *, state: str, code: str | None = None,
    member: str = "张三华",
) -> Application:
    pii = app[keys.pii_key]
    return await Application.create(
        binder=binder,
        member_name_enc=pii.encrypt(member, purpose="name"),
        member_name_hash=pii.blind_index(member, purpose="name"),
        id_type="resident_id",
        id_number_enc=pii.encrypt("110101195001011234", purpose="id_number"),
        id_hash=pii.blind_index("110101195001011234", purpose="id_number"),
        relationship="parent",
        reason="为了方便家人代办医保业务",
        state=state,
        failure_code=code,
        submitted_at=datetime.now(timezone.utc),
    )


async def test_latest_attempt_per_user_in_one_call(app: web.Application) -> None:
    ann, ben, cat = [
        await User.create(openid=f"demo-{u}", unionid=f"union-{u}") for u in ("ann", "ben", "cat")
    ]
    await _application(app, ann, state="failed", code="INFO_MISMATCH")  # older
    newer = await _application(app, ann, state="needs_action", member="李四")
    # a needs_action row without its code: the event that moved it there has it
    await ApplicationEvent.create(
        application=newer, from_state="submitted", to_state="needs_action", actor="system",
        code="FACE_CHECK_FAILED", note="被绑定人的人脸核验未完成或未通过。",
    )
    await _application(app, ben, state="active")  # nothing to explain
    stale = await _application(app, cat, state="failed", code="ALREADY_BOUND")
    await Application.filter(id=stale.id).update(
        updated_at=datetime.now(timezone.utc) - timedelta(days=40)
    )
    since = datetime.now(timezone.utc) - timedelta(days=30)
    found = await attempts.latest_binding_attempts([ann.id, ben.id, cat.id], since=since)
    assert set(found) == {ann.id}
    got = found[ann.id]
    assert (got.state, got.failure_code) == ("needs_action", "FACE_CHECK_FAILED")
    assert got.failure_message == "被绑定人的人脸核验未完成或未通过。"
    assert app[keys.pii_key].decrypt(got.member_name_enc, purpose="name") == "李四"
    assert await attempts.latest_binding_attempts([], since=since) == {}


async def test_a_refused_authorization_is_recorded_and_settled_by_a_later_success(
    client: TestClient, app: web.Application
) -> None:
    me = await add_person(app, "张伟", balance_fen=1_000)
    tokens = await verified_user(client, "alice", me)
    user_id = tokens["user"]["id"]
    mother = await add_person(app, "李秀英")
    resp = await authorize(client, tokens, mother, "cousin")
    assert resp.status == 422
    [row] = await MutualAidRefusal.filter(user_id=user_id)
    assert (row.action, row.code) == ("authorize", "RELATIONSHIP_NOT_ALLOWED")
    assert "所选关系" in row.message
    found = await attempts.latest_mutual_aid_refusals([user_id], since=LONG_AGO)
    assert found[user_id].code == "RELATIONSHIP_NOT_ALLOWED"
    # nothing about the relative is kept
    assert "李" not in row.message and mother.id_number not in row.message
    # the same request done right: the refusal is settled, not news any more
    assert (await authorize(client, tokens, mother)).status == 201
    assert await attempts.latest_mutual_aid_refusals([user_id], since=LONG_AGO) == {}


async def test_an_unverified_authorizer_and_a_locked_revoke_are_recorded(
    client: TestClient, app: web.Application
) -> None:
    nobody = await login(client, "nobody")
    mother = await add_person(app, "李秀英")
    assert (await authorize(client, nobody, mother)).status == 403
    codes = await MutualAidRefusal.filter(user_id=nobody["user"]["id"]).values_list(
        "code", flat=True
    )
    assert codes == ["AUTHORIZER_NOT_VERIFIED"]
    # Wuhan (420100): no unbinding within 3 months
    me = await add_person(app, "张伟", balance_fen=1_000)
    tokens = await verified_user(client, "alice", me)
    created = await (await authorize(client, tokens, mother)).json()
    resp = await client.delete(
        f"/api/v1/mutual-aid/authorizations/{created['id']}", headers=bearer(tokens)
    )
    assert resp.status == 409
    found = await attempts.latest_mutual_aid_refusals([tokens["user"]["id"]], since=LONG_AGO)
    refusal = found[tokens["user"]["id"]]
    assert (refusal.action, refusal.code) == ("revoke", "UNBIND_LOCKED")


async def test_a_spent_guessing_budget_is_not_recorded(
    client: TestClient, app: web.Application
) -> None:
    """A flood must not write a row per request: RATE_LIMITED is not the rules saying no."""
    me = await add_person(app, "张伟", balance_fen=1_000)
    tokens = await verified_user(client, "alice", me)
    mother = await add_person(app, "李秀英")
    budget = app[keys.family_key].guesses.per_user
    statuses = [(await authorize(client, tokens, mother, "cousin")).status for _ in range(budget + 1)]
    assert statuses[-1] == 429
    codes = set(await MutualAidRefusal.filter(user_id=tokens["user"]["id"]).values_list(
        "code", flat=True
    ))
    assert codes == {"RELATIONSHIP_NOT_ALLOWED"}


# ── what the follower hears ──

async def test_a_follower_hears_why_their_mutual_aid_authorization_was_refused(
    client: TestClient, app: web.Application, wx: Wx
) -> None:
    """End to end: the mini-program refuses an authorization (HTTP), the same person asks
    the official account (signed XML, safe mode) and hears that refusal, not the FAQ."""
    me = await add_person(app, "张伟", balance_fen=1_000)
    tokens = await verified_user(client, "gina", me)
    await OfficialFollower.create(oa_openid="oa-gina", unionid="union-gina")
    mother = await add_person(app, "李秀英")
    assert (await authorize(client, tokens, mother, "cousin")).status == 422
    answer = await wx.say("家庭共济授权为什么失败", "oa-gina", mode="safe")
    assert "授权家庭共济没有成功" in answer and "所选关系" in answer
    assert "近亲属" in answer  # the 共济 answer to RELATIONSHIP_NOT_ALLOWED, not the 亲情账户 one
    assert "李" not in answer
    # a follower without a refusal gets the general answer
    general = await wx.say("家庭共济授权为什么失败", "oa-hank")
    assert "常见原因" in general and "没有成功" not in general


async def test_needs_action_and_a_reviewers_correction_are_explained_as_such(
    app: web.Application, wx: Wx
) -> None:
    for user, state, code, says in (
        ("ivy", "needs_action", "FACE_CHECK_FAILED", "重新刷脸并提交"),
        ("jon", "correction_requested", None, "审核要求补充材料"),
    ):
        binder = await User.create(openid=f"demo-{user}", unionid=f"union-{user}")
        await OfficialFollower.create(oa_openid=f"oa-{user}", unionid=f"union-{user}")
        row = await _application(app, binder, state=state, code=code)
        if state == "correction_requested":
            row.failure_message = "户口本首页不清晰,请补传"
            await row.save()
        answer = await wx.say("我给我妈绑定亲情账户一直失败怎么办", f"oa-{user}")
        assert "张*华" in answer and says in answer and "保留" in answer, answer
        if state == "correction_requested":
            assert "户口本首页不清晰,请补传" in answer
