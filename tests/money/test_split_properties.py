"""The split engine's invariants, property-based (hypothesis).

* the parts add up to the 个人负担: acct + Σ mulaid + cash == psn_part;
* never more than psn_part taken from accounts, never more than a bucket holds (no
  negative balance), nothing from a payer the policy excludes;
* order: cash only once every allowed bucket is empty; an authorizer pays only once the
  member's own account and every earlier authorizer are exhausted;
* scope (the 政策范围内 breakdown): 共济 pays only in-scope costs, the own account only
  in-scope costs plus what the region lets it pay beyond them (out-of-scope first), the
  rest of the out-of-scope part is cash — and still no 分 created or lost, order kept;
* through the real service: settle then reverse restores every balance exactly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.models import Account
from server.domain.settlements.request import fen_to_yuan, yuan_to_fen
from server.domain.settlements.split import Payer, Scope, Split, compute_split
from server.http_errors import status_of
from tests.factories import add_person, authorize, post_signed, verified_user
from tests.money.conftest import settlement_body

fen = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, Payer | None, list[Payer], dict[str, int]]:
    n_buckets = draw(st.integers(1, 5))
    buckets = [f"acct:{i}" for i in range(n_buckets)]
    available = {b: draw(fen) for b in buckets}
    own = draw(st.one_of(st.none(), st.builds(lambda b: Payer("own", b), st.sampled_from(buckets))))
    authorizers = [
        Payer(f"a{i}", draw(st.sampled_from(buckets)), draw(st.booleans()))
        for i in range(draw(st.integers(0, 6)))
    ]
    return draw(fen), own, authorizers, available


@given(scenarios())
def test_split_invariants(scenario: tuple[int, Payer | None, list[Payer], dict[str, int]]) -> None:
    psn_part, own, authorizers, available = scenario
    split = compute_split(psn_part, own, authorizers, available)
    assert split.acct_pay_fen + split.mulaid_fen + split.psn_cash_pay_fen == psn_part
    assert min(split.acct_pay_fen, split.mulaid_fen, split.psn_cash_pay_fen) >= 0
    assert sum(split.taken.values()) == psn_part - split.psn_cash_pay_fen <= psn_part
    for bucket, amount in split.taken.items():
        assert 0 < amount <= available[bucket]  # no bucket goes negative
    allowed = {p.key for p in authorizers if p.allowed}
    assert all(key in allowed for key, _ in split.mulaid)
    # order: own first, then authorizers in order; cash only when every allowed bucket is empty
    left = dict(available)
    for bucket, amount in split.taken.items():
        left[bucket] -= amount
    if split.psn_cash_pay_fen > 0:
        reachable = ([own] if own else []) + [p for p in authorizers if p.allowed]
        assert all(left[p.bucket] == 0 for p in reachable)
    if split.mulaid and own is not None:
        assert left[own.bucket] == 0
    keys = [p.key for p in authorizers]
    paid = [key for key, _ in split.mulaid]
    assert paid == sorted(paid, key=keys.index)
    for key, _ in split.mulaid[:-1]:  # every authorizer but the last one paying is emptied
        payer = authorizers[keys.index(key)]
        assert left[payer.bucket] == 0


@st.composite
def scoped_scenarios(
    draw: st.DrawFn,
) -> tuple[int, Payer | None, list[Payer], dict[str, int], Scope]:
    psn_part, own, authorizers, available = draw(scenarios())
    out_of_scope = draw(st.integers(0, psn_part))
    own_may_pay = draw(st.sampled_from([0, out_of_scope, draw(st.integers(0, out_of_scope))]))
    return psn_part, own, authorizers, available, Scope(out_of_scope, own_may_pay)


def _left(split: Split, available: dict[str, int]) -> dict[str, int]:
    left = dict(available)
    for bucket, amount in split.taken.items():
        left[bucket] -= amount
    return left


@given(scoped_scenarios())
def test_scoped_split_invariants(
    scenario: tuple[int, Payer | None, list[Payer], dict[str, int], Scope],
) -> None:
    psn_part, own, authorizers, available, scope = scenario
    split = compute_split(psn_part, own, authorizers, available, scope)
    acct, mulaid, cash = split.acct_pay_fen, split.mulaid_fen, split.psn_cash_pay_fen
    in_scope = psn_part - scope.out_of_scope_fen
    # no 分 created or lost, no bucket overdrawn
    assert acct + mulaid + cash == psn_part and min(acct, mulaid, cash) >= 0
    assert sum(split.taken.values()) == acct + mulaid
    assert all(0 < amount <= available[bucket] for bucket, amount in split.taken.items())
    # scope: the own account covers out-of-scope costs first and no more than allowed;
    # 共济 pays only what is left of the in-scope part; the forbidden part is cash
    assert split.acct_out_of_scope_fen == min(acct, scope.own_may_pay_fen)
    acct_in_scope = acct - split.acct_out_of_scope_fen
    assert acct_in_scope + mulaid <= in_scope
    assert cash >= scope.out_of_scope_fen - scope.own_may_pay_fen
    allowed = {p.key for p in authorizers if p.allowed}
    assert all(key in allowed for key, _ in split.mulaid)
    # order: the own account before anyone, authorizers in their order, cash last
    left = _left(split, available)
    own_done = own is None or left[own.bucket] == 0 or acct == in_scope + scope.own_may_pay_fen
    if mulaid:
        assert own_done
    if split.acct_out_of_scope_fen < scope.own_may_pay_fen:  # allowed but not paid by it
        assert own is None or left[own.bucket] == 0
    if acct_in_scope + mulaid < in_scope:  # in-scope cash: every allowed payer is empty
        assert own_done
        assert all(left[p.bucket] == 0 for p in authorizers if p.allowed)
    keys = [p.key for p in authorizers]
    paid = [key for key, _ in split.mulaid]
    assert paid == sorted(paid, key=keys.index)
    for key, _ in split.mulaid[:-1]:
        assert left[authorizers[keys.index(key)].bucket] == 0


@given(scenarios())
def test_no_breakdown_is_all_in_scope(
    scenario: tuple[int, Payer | None, list[Payer], dict[str, int]],
) -> None:
    """A 2207 without the breakdown behaves as before the breakdown existed."""
    psn_part, own, authorizers, available = scenario
    plain = compute_split(psn_part, own, authorizers, available)
    assert plain == compute_split(psn_part, own, authorizers, available, Scope(0))
    # and where the own account may pay everything, scope changes nothing for it
    everything = compute_split(psn_part, own, [], available, Scope(psn_part, psn_part))
    assert everything.acct_pay_fen == compute_split(psn_part, own, [], available).acct_pay_fen


def test_scope_refuses_impossible_values() -> None:
    with pytest.raises(ValueError):
        Scope(10, 11)
    with pytest.raises(ValueError):
        compute_split(10, None, [], {}, Scope(11))


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_yuan_round_trip_is_exact(amount: int) -> None:
    assert yuan_to_fen(fen_to_yuan(amount), "x") == amount
    assert Decimal(fen_to_yuan(amount)) * 100 == amount


@given(st.text(max_size=12))
def test_anything_but_a_yuan_string_is_refused_or_exact(text: str) -> None:
    try:
        value = yuan_to_fen(text, "x")
    except Exception as exc:  # noqa: BLE001 - the only allowed failure is the 422
        assert isinstance(exc, DomainError) and status_of(exc) == 422
    else:
        assert text.isascii()  # "1٠.00" is ten yuan to Decimal (issue #17 finding 9)
        assert Decimal(text) * 100 == value


@pytest.fixture
async def family(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> dict[str, Any]:
    from datetime import date

    member = await add_person(app, "李秀英", balance_fen=0)
    payers = []
    for i in range(3):
        person = await add_person(app, f"张{i}", birth=date(1985 + i, 1, 1), balance_fen=0)
        tokens = await verified_user(client, f"auth{i}", person)
        assert (await authorize(client, tokens, member, "child")).status == 201
        payers.append(person)
    return {"member": member, "authorizers": payers, "n": [0]}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    balances=st.lists(st.integers(0, 50_000), min_size=4, max_size=4),
    psn_part=st.integers(0, 150_000),
    inpatient=st.booleans(),
)
async def test_settle_then_reverse_restores_balances(
    client: TestClient,
    institution: dict[str, str],
    family: dict[str, Any],
    balances: list[int],
    psn_part: int,
    inpatient: bool,
) -> None:
    people = [family["member"], *family["authorizers"]]
    for person, balance in zip(people, balances):
        await Account.filter(person_id=person.id).update(balance_fen=balance)
    family["n"][0] += 1
    setl_id = f"P{family['n'][0]}"
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body(
        setl_id,
        fen_to_yuan(psn_part),
        psn_no=family["member"].psn_no,
        med_type="21" if inpatient else "11",
    )
    out = await (await post_signed(client, "/settlements", body, **who)).json()
    taken = [
        yuan_to_fen(out["acct_pay"], "a"),
        *(yuan_to_fen(d["amount"], "m") for d in out["mulaid_detail"]),
    ]
    assert sum(taken) + yuan_to_fen(out["psn_cash_pay"], "c") == psn_part
    after = [(await Account.get(person_id=p.id)).balance_fen for p in people]
    assert all(b >= 0 for b in after)
    assert sum(balances) - sum(after) == sum(taken) <= psn_part
    # Wuhan allows inpatient 共济 (policy.toml): the same split either way
    assert out["acct_pay"] == fen_to_yuan(min(balances[0], psn_part))
    resp = await post_signed(
        client, f"/settlements/{setl_id}/reversal", {"setl_id": setl_id}, **who
    )
    assert resp.status == 200
    restored = [(await Account.get(person_id=p.id)).balance_fen for p in people]
    assert restored == balances
