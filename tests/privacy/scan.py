"""Look for a person in every text column of every table (the Tortoise models, introspected)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tortoise import fields
from tortoise.context import get_current_context

TEXT_FIELDS = (fields.CharField, fields.TextField, fields.JSONField, fields.UUIDField)


def text_columns() -> dict[Any, list[str]]:
    """Every model with the names of its text-like fields (relations excluded)."""
    ctx = get_current_context()
    assert ctx is not None
    out: dict[Any, list[str]] = {}
    for model in ctx.apps.get_models_iterable():  # type: ignore[union-attr]
        names = [
            name
            for name, field in model._meta.fields_map.items()
            if isinstance(field, TEXT_FIELDS) and name in model._meta.db_fields
        ]
        if names:
            out[model] = names
    return out


async def find(needles: Iterable[str], *, skip_tables: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """``(table, column, needle)`` for every text cell holding one of ``needles``."""
    wanted = [n for n in needles if n]
    skip = set(skip_tables)
    hits: list[tuple[str, str, str]] = []
    for model, names in text_columns().items():
        table = model._meta.db_table
        if table in skip:
            continue
        for row in await model.all().values(*names):
            for column, value in row.items():
                if value is None:
                    continue
                text = value if isinstance(value, str) else repr(value)
                hits += [(table, column, n) for n in wanted if n in text]
    return hits


def tables() -> set[str]:
    return {m._meta.db_table for m in text_columns()}
