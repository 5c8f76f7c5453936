"""The family area's pre-built reads (server/domain/family/queries.py) and the registry
look-up, against rows made through the API — on SQLite and PostgreSQL alike (the SQL is
built per dialect, so each backend runs its own statement)."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.family import queries
from server.domain.models import Application, Binding, InsuredPerson, User
from server.domain.registry import LocalRegistry, id_hash, match, name_hash
from tests.factories import bearer, login, verified_user
from tests.family.helpers import (
    ALICE,
    BOB,
    CAROL,
    FATHER,
    MOTHER,
    SON,
    WIFE,
    bind,
    create,
    load_registry,
    png,
    sign,
    upload,
)


async def test_owned_application_is_only_the_binders(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    alice = await verified_user(client, "alice", ALICE)
    bob = await verified_user(client, "bob", BOB)
    made = await create(client, bearer(alice), MOTHER, "parent")
    app_id = uuid.UUID(made["id"])

    got = await queries.owned_application(app_id, alice["user"]["id"])
    assert got is not None and got.id == app_id and got.state == "draft"
    assert got.binder_id == alice["user"]["id"] and got.relationship == "parent"
    assert await queries.owned_application(app_id, bob["user"]["id"]) is None
    assert await queries.owned_application(uuid.uuid4(), alice["user"]["id"]) is None


async def test_binder_row(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    verified = await verified_user(client, "alice", ALICE)
    plain = await login(client, "nobody")

    row = await queries.binder(verified["user"]["id"])
    user = await User.get(id=verified["user"]["id"])
    person = await InsuredPerson.get(id=user.person_id)
    assert row is not None
    assert row["id"] == user.id and bool(row["realname_verified"]) is True
    assert row["id_hash"] == user.id_hash and row["person_id"] == person.id
    assert row["person__region_code"] == person.region_code

    row = await queries.binder(plain["user"]["id"])
    assert row is not None and not row["realname_verified"]
    assert row["person_id"] is None and row["id_hash"] is None
    assert await queries.binder(10**9) is None


async def test_materials_oldest_first(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    made = await create(client, h, MOTHER, "parent")
    first = await (await upload(client, h, made["id"], "household_register")).json()
    second = await (
        await upload(client, h, made["id"], "id_card_front", data=png(2, 2))
    ).json()
    other = await create(client, h, FATHER, "parent")

    rows = await queries.materials(uuid.UUID(made["id"]))
    assert [str(m.id) for m in rows] == [first["id"], second["id"]]
    assert [m.kind for m in rows] == ["household_register", "id_card_front"]
    assert rows[1].sha256 == second["sha256"] and rows[1].size == second["size"]
    assert rows[0].storage_key and rows[0].content_type == "image/png"
    assert await queries.materials(uuid.UUID(other["id"])) == []


async def test_latest_signature(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    made = await create(client, h, MOTHER, "parent")
    app_id = uuid.UUID(made["id"])
    assert await queries.latest_signature(app_id) is None

    assert (await sign(client, h, made["id"], signature_image=None)).status == 201
    once = await queries.latest_signature(app_id)
    assert once is not None and once.signature_image_key is None
    assert (await sign(client, h, made["id"], signature_image=_png_b64())).status == 201
    latest = await queries.latest_signature(app_id)
    assert latest is not None and latest.id > once.id
    assert latest.signature_image_key is not None and latest.version == once.version


async def test_active_members(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    alice = await verified_user(client, "alice", ALICE)
    bob = await verified_user(client, "bob", BOB)
    h = bearer(alice)
    mother = await bind(client, h, MOTHER, "parent")
    father = await bind(client, h, FATHER, "parent")
    wife = await bind(client, h, WIFE, "spouse")
    await bind(client, bearer(bob), MOTHER, "parent")  # someone else's binding
    assert (await client.delete(f"/api/v1/family/members/{father['binding_id']}", headers=h)).status == 204

    rows = await queries.active_members(alice["user"]["id"])
    assert [str(r["id"]) for r in rows] == [mother["binding_id"], wife["binding_id"]]
    assert set(rows[0]) == set(queries.MEMBER_COLUMNS)
    binding = await Binding.get(id=mother["binding_id"]).select_related("member")
    person: InsuredPerson = binding.member
    r = rows[0]
    assert (r["relationship"], r["state"]) == ("parent", "active")
    assert isinstance(r["bound_at"], datetime) and r["bound_at"] == binding.bound_at
    assert r["member__name_enc"] == person.name_enc
    assert r["member__id_number_enc"] == person.id_number_enc
    assert (r["member__insurance_type"], r["member__region_code"], r["member__status"]) == (
        person.insurance_type,
        person.region_code,
        person.status,
    )
    assert bool(r["member__voucher_activated"]) is person.voucher_activated
    assert rows[1]["bound_at"] >= rows[0]["bound_at"]
    assert await queries.active_members(10**9) == []


async def test_registry_lookup_and_match(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    pii = app[keys.pii_key]
    registry = LocalRegistry(pii)
    name, id_type, id_number = CAROL
    record = await registry.lookup(id_type, id_number.lower())  # the X of an ID in any case
    person = await InsuredPerson.get(id_hash=id_hash(pii, id_type, id_number))
    assert record is not None
    assert (record.person_id, record.psn_no, record.id_type) == (person.id, person.psn_no, id_type)
    assert (record.insurance_type, record.region_code, record.status) == (
        person.insurance_type,
        person.region_code,
        person.status,
    )
    assert record.has_personal_account is True and record.voucher_activated is True
    assert record.name_hash == name_hash(pii, name) and record.guardian_hashes == frozenset()
    son = await registry.lookup(SON[1], SON[2])
    assert son is not None and son.guardian_hashes == {
        id_hash(pii, ALICE[1], ALICE[2]),
        id_hash(pii, WIFE[1], WIFE[2]),
    }
    assert await registry.lookup(id_type, "110101199001011237") is None

    assert await match(registry, pii, id_type=id_type, id_number=id_number, name=name) == (
        "match",
        record,
    )
    mismatch = await match(registry, pii, id_type=id_type, id_number=id_number, name="吴")
    assert mismatch == ("mismatch", record)
    unknown = await match(registry, pii, id_type=id_type, id_number="110101199001011237", name=name)
    assert unknown == ("not_found", None)
    assert await Application.all().count() == 0  # look-ups store nothing


def _png_b64() -> str:
    return base64.b64encode(png()).decode()
