"""The account of a person served at the counter (窗口代办) who has no WeChat account.

A binder or 共济 authorizer is a ``User``. Someone who comes to the 医保大厅 without a
smartphone has none, so the counter makes one from their registry record:

* ``openid`` is ``counter:<random>`` — never a WeChat openid (those have no colon), so no
  WeChat login can reach the row, and it says where the account came from (as
  ``deleted:<random>`` marks a deleted account, ``server.privacy.deletion``). No
  unionid, no session key, no subscription: notices to it end ``undeliverable`` in the
  push queue without a call to WeChat;
* real-name verified: the clerk checked the person's ID document against the person in
  front of them and the registry matched name and ID (the counter's look-up) — the
  counter's equivalent of the face check. Name and ID are kept encrypted and the blind
  index ``id_hash`` is set, like a verification in the mini-program;
* a person who already has a verified mini-program account is served as that account:
  one person, one account (the unique ``users.id_hash``).

Later, when the person logs in with WeChat and passes real-name verification, the new
WeChat account *adopts* the counter account (``adopt``, called by
``server.domain.realname``): every row that pointed at the counter account (bindings,
applications, signatures, 共济 authorizations, notices, 代激活 records) now points at the
WeChat account, which keeps its id and its tokens; the counter account is retired
(``merged:<random>``, its identity cleared). The consents given on paper at the counter
stay with the retired account: they are append-only records (migration 0009) of what was
agreed, where.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain.errors import DomainError
from server.domain.models import (
    AccountDeletion,
    Consent,
    InsuredPerson,
    PrivacyNoticeAcceptance,
    User,
)
from server.domain.pii import PiiCipher

COUNTER_PREFIX = "counter:"
MERGED_PREFIX = "merged:"
# records that stay with the retired counter account (append-only, or one per account)
_KEPT: tuple[type, ...] = (Consent, PrivacyNoticeAcceptance, AccountDeletion)


def is_counter_account(openid: str | None) -> bool:
    """Whether a user row was made at the counter (and not yet adopted by WeChat)."""
    return bool(openid) and str(openid).startswith(COUNTER_PREFIX)


async def account_for(
    person: InsuredPerson, *, name: str, id_number: str, pii: PiiCipher, now: datetime
) -> tuple[User, bool]:
    """The person's account: their verified one if they have one, else a counter account
    made now from the registry record; and whether it was made now."""
    existing = await User.get_or_none(id_hash=person.id_hash)
    if existing is not None:
        if str(existing.openid).startswith("deleted:"):  # server.privacy.deletion under way
            raise DomainError(
                "ACCOUNT_BEING_DELETED", "该参保人的账户正在注销,注销完成后才能在窗口办理"
            )
        return existing, False
    try:
        async with in_transaction():
            user = await User.create(
                openid=f"{COUNTER_PREFIX}{secrets.token_hex(16)}",
                realname_verified=True,
                realname_verified_at=now,
                name_enc=pii.encrypt(name, purpose="name"),
                id_type=person.id_type,
                id_number_enc=pii.encrypt(id_number, purpose="id_number"),
                id_hash=person.id_hash,
                person_id=person.id,
            )
    except IntegrityError:  # made by a concurrent request (or verified in WeChat) meanwhile
        existing = await User.get_or_none(id_hash=person.id_hash)
        if existing is None:
            raise
        return existing, False
    return user, True


async def adopt(counter_user: User, *, into: int) -> int:
    """The WeChat account ``into`` takes over the counter account (module docstring), in
    the caller's transaction, before ``into`` takes the identity (the unique index). How
    many rows moved."""
    if not is_counter_account(counter_user.openid):
        raise DomainError("IDENTITY_IN_USE", "该身份已由另一个微信账号完成实名认证")
    moved = 0
    old = counter_user.id
    for model in Tortoise.apps["models"].values():
        if model in _KEPT or model is User:
            continue
        for name in model._meta.fk_fields:
            field = model._meta.fields_map[name]
            if field.related_model is User:
                column = field.source_field or f"{name}_id"
                moved += await model.filter(**{column: old}).update(**{column: into})
    await User.filter(id=old).update(
        openid=f"{MERGED_PREFIX}{into}:{secrets.token_hex(8)}",
        realname_verified=False,
        name_enc=None,
        id_number_enc=None,
        id_hash=None,
        person_id=None,
    )
    return moved


__all__ = ["COUNTER_PREFIX", "account_for", "adopt", "is_counter_account"]
