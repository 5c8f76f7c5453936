"""家庭共济 authorizations through the API: the 告知书, every refusal code, revoke, quota."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.identity import make_resident_id
from server.domain.models import Account, Authorization, LedgerEntry
from tests.factories import add_person, authorize, bearer, error_of, login, verified_user

CHENGDU, YICHANG, HANGZHOU, LANZHOU = "510100", "420500", "330100", "620100"


async def _refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    err = await error_of(resp)
    assert err["code"] == code, err
    return err


async def test_notice_is_versioned_and_hashed(client: TestClient) -> None:
    tokens = await login(client, "alice")
    resp = await client.get("/api/v1/mutual-aid/notice", headers=bearer(tokens))
    body = await resp.json()
    assert body["title"] == "职工医保个人账户家庭共济绑定告知书"
    assert body["sha256"] == hashlib.sha256(body["text"].encode()).hexdigest()
    assert body["version"]
    assert (await client.get("/api/v1/mutual-aid/notice")).status == 401


async def test_authorizer_refusals(client: TestClient, app: web.Application) -> None:
    member = await add_person(app, "李秀英")
    # not real-name verified
    tokens = await login(client, "nobody")
    err = await _refused(await authorize(client, tokens, member), 403, "AUTHORIZER_NOT_VERIFIED")
    # ... and learns nothing about the relative (the registry is no oracle, issue #17)
    assert err["fix"] and [b["code"] for b in err["blocking"]] == ["AUTHORIZER_NOT_VERIFIED"]
    # 城乡居民医保: no personal account to share
    resident = await verified_user(
        client, "resident", await add_person(app, "张建国", insurance_type="resident")
    )
    await _refused(await authorize(client, resident, member), 409, "AUTHORIZER_NOT_EMPLOYEE")
    # suspended insurance
    suspended = await verified_user(
        client, "susp", await add_person(app, "孙磊", status="suspended")
    )
    await _refused(await authorize(client, suspended, member), 409, "AUTHORIZER_NOT_EMPLOYEE")


async def test_member_refusals(client: TestClient, app: web.Application) -> None:
    me = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=1_000)
    tokens = await verified_user(client, "alice", me)
    member = await add_person(app, "李秀英")
    await _refused(await authorize(client, tokens, me), 422, "SELF_NOT_ALLOWED")
    bad = type(
        "P", (), {"name": "李秀英", "id_number": "420102195806122243"}
    )()  # wrong check digit
    err = await _refused(await authorize(client, tokens, bad), 422, "INVALID_ID_NUMBER")
    assert err["fields"] == {"id_number": "INVALID_ID_NUMBER"}
    wrong_name = type("P", (), {"name": "李秀芳", "id_number": member.id_number})()
    await _refused(await authorize(client, tokens, wrong_name), 422, "INFO_MISMATCH")
    unknown = type(
        "P", (), {"name": "李秀英", "id_number": make_resident_id("110101", date(1950, 1, 1))}
    )()
    await _refused(await authorize(client, tokens, unknown), 422, "INFO_MISMATCH")
    stopped = await add_person(app, "孙磊", status="suspended")
    await _refused(await authorize(client, tokens, stopped), 409, "MEMBER_NOT_INSURED")
    err = await _refused(
        await authorize(client, tokens, member, "cousin"), 422, "RELATIONSHIP_NOT_ALLOWED"
    )
    assert err["fields"] == {"relationship": "RELATIONSHIP_NOT_ALLOWED"}
    assert await Authorization.all().count() == 0


async def test_relationships_follow_the_region_and_date(
    client: TestClient, app: web.Application
) -> None:
    """Gansu stays on 配偶、父母、子女 (policy.toml); Hubei has 近亲属 since 2024-10-01."""
    gansu = await verified_user(
        client, "gansu", await add_person(app, "马军", region=LANZHOU, balance_fen=1)
    )
    grandchild = await add_person(app, "马小军", region=LANZHOU, birth=date(2012, 1, 1))
    err = await _refused(
        await authorize(client, gansu, grandchild, "grandchild"), 422, "RELATIONSHIP_NOT_ALLOWED"
    )
    assert "配偶、父母、子女" in err["message"]
    hubei = await verified_user(
        client, "hubei", await add_person(app, "张伟", region=YICHANG, balance_fen=1)
    )
    grandchild2 = await add_person(app, "张小明", region=YICHANG, birth=date(2012, 1, 1))
    assert (await authorize(client, hubei, grandchild2, "grandchild")).status == 201


async def test_notice_must_be_the_current_one(client: TestClient, app: web.Application) -> None:
    tokens = await verified_user(
        client, "alice", await add_person(app, "张伟", birth=date(1990, 3, 7))
    )
    member = await add_person(app, "李秀英")
    await _refused(
        await authorize(client, tokens, member, notice_version="2021-01", notice_sha256="0" * 64),
        409,
        "NOTICE_OUTDATED",
    )
    await _refused(
        await authorize(client, tokens, member, notice_version="", notice_sha256=""),
        409,
        "NOTICE_REQUIRED",
    )
    assert (await authorize(client, tokens, member)).status == 201
    await _refused(await authorize(client, tokens, member), 409, "ALREADY_AUTHORIZED")


async def test_family_size_and_authorizer_caps(client: TestClient, app: web.Application) -> None:
    tokens = await verified_user(
        client, "alice", await add_person(app, "张伟", birth=date(1990, 3, 7))
    )
    for i in range(6):  # 7 with the authorizer (seed 001)
        kid = await add_person(app, f"张{i}号", birth=date(2010, 1, 1 + i))
        assert (await authorize(client, tokens, kid, "child")).status == 201
    seventh = await add_person(app, "张七号", birth=date(2011, 1, 1))
    err = await _refused(
        await authorize(client, tokens, seventh, "child"), 409, "FAMILY_SIZE_LIMIT"
    )
    assert "7" in err["message"]
    # Zhejiang: a person may have only one authorizer
    member = await add_person(app, "赵母", region=HANGZHOU)
    first = await verified_user(
        client, "zj1", await add_person(app, "赵强", region=HANGZHOU, birth=date(1985, 9, 9))
    )
    second = await verified_user(
        client, "zj2", await add_person(app, "赵刚", region=HANGZHOU, birth=date(1987, 9, 9))
    )
    assert (await authorize(client, first, member)).status == 201
    await _refused(await authorize(client, second, member), 409, "AUTHORIZER_LIMIT")


async def test_cross_province_needs_a_quota_set_aside(
    client: TestClient, app: web.Application
) -> None:
    me = await add_person(app, "陈静", region=CHENGDU, birth=date(1960, 2, 14), balance_fen=100_000)
    tokens = await verified_user(client, "chen", me)
    member = await add_person(app, "陈母", region=YICHANG, birth=date(1935, 1, 1))
    await _refused(await authorize(client, tokens, member), 409, "CROSS_PROVINCE_QUOTA_REQUIRED")
    await _refused(
        await authorize(client, tokens, member, quota_fen=200_000), 409, "INSUFFICIENT_BALANCE"
    )
    resp = await authorize(client, tokens, member, quota_fen=30_000)
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert (
        out["cross_province"]
        and out["quota_fen"] == 30_000
        and out["quota_remaining_fen"] == 30_000
    )
    assert (await Account.get(person_id=me.id)).balance_fen == 70_000
    # within the province a quota makes no sense
    local = await add_person(app, "陈弟", region=CHENGDU, birth=date(1965, 1, 1))
    err = await _refused(
        await authorize(client, tokens, local, "sibling", quota_fen=100),
        422,
        "QUOTA_NOT_APPLICABLE",
    )
    assert err["fields"] == {"quota_fen": "QUOTA_NOT_APPLICABLE"}
    # revoking returns what is left of the quota
    resp = await client.delete(
        f"/api/v1/mutual-aid/authorizations/{out['id']}", headers=bearer(tokens)
    )
    assert resp.status == 204
    assert (await Account.get(person_id=me.id)).balance_fen == 100_000
    kinds = sorted(
        await LedgerEntry.filter(account__person_id=me.id).values_list("kind", flat=True)
    )
    assert kinds == ["import", "quota_hold", "quota_hold", "quota_release", "quota_release"]


async def test_revoke_and_the_unbind_lock(client: TestClient, app: web.Application) -> None:
    # Wuhan: no unbinding within 3 months (policy.toml, Wuhan guide)
    wuhan = await verified_user(
        client, "wuhan", await add_person(app, "张伟", birth=date(1990, 3, 7))
    )
    member = await add_person(app, "李秀英")
    auth = await (await authorize(client, wuhan, member)).json()
    err = await _refused(
        await client.delete(
            f"/api/v1/mutual-aid/authorizations/{auth['id']}", headers=bearer(wuhan)
        ),
        409,
        "UNBIND_LOCKED",
    )
    assert date.fromisoformat(auth["revocable_from"]) > date.fromisoformat(auth["created_at"][:10])
    assert "及以后" in err["fix"]
    # elsewhere in Hubei: revocable at once, by the authorizer only
    yichang = await verified_user(
        client, "yc", await add_person(app, "王芳", region=YICHANG, birth=date(1992, 8, 15))
    )
    member2 = await add_person(app, "王母", region=YICHANG)
    auth2 = await (await authorize(client, yichang, member2)).json()
    path = f"/api/v1/mutual-aid/authorizations/{auth2['id']}"
    await _refused(await client.delete(path, headers=bearer(wuhan)), 404, "AUTHORIZATION_NOT_FOUND")
    await _refused(
        await client.delete("/api/v1/mutual-aid/authorizations/xyz", headers=bearer(wuhan)),
        404,
        "AUTHORIZATION_NOT_FOUND",
    )
    assert (await client.delete(path, headers=bearer(yichang))).status == 204
    await _refused(
        await client.delete(path, headers=bearer(yichang)), 404, "AUTHORIZATION_NOT_FOUND"
    )
    listed = await (
        await client.get("/api/v1/mutual-aid/authorizations", headers=bearer(yichang))
    ).json()
    assert listed["items"] == []
    # and can authorize again afterwards
    assert (await authorize(client, yichang, member2)).status == 201


async def test_region_rules_follow_the_date(client: TestClient, app: web.Application) -> None:
    """Before 2024-11 only the same 统筹区; before 2026-01-09 no cross-province (policy.toml)."""
    from server import keys
    from server.domain import mutual_aid
    from server.domain.errors import DomainError

    me = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=1_000)
    tokens = await verified_user(client, "alice", me)
    notice = mutual_aid.current_notice()

    async def attempt(member: Any, today: date) -> str:
        try:
            await mutual_aid.authorize(
                user_id=tokens["user"]["id"],
                name=member.name,
                id_type="resident_id",
                id_number=member.id_number,
                relationship="parent",
                notice_version=notice.version,
                notice_sha256=notice.sha256,
                quota_fen=None,
                pii=app[keys.pii_key],
                policy=app[keys.policy_key],
                redis=app[keys.redis_key],
                guesses=app[keys.family_key].guesses,
                ip=None,
                today=today,
            )
        except DomainError as err:
            return err.code
        return "ok"

    other_city = await add_person(app, "王母", region=YICHANG)
    assert await attempt(other_city, date(2024, 6, 1)) == "OUTSIDE_POOLING_AREA"
    other_province = await add_person(app, "陈母", region=CHENGDU)
    assert await attempt(other_province, date(2025, 6, 1)) == "CROSS_PROVINCE_NOT_ALLOWED"
    assert await attempt(other_city, date(2025, 6, 1)) == "ok"
