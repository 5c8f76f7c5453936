"""The identity-guessing budget: how often one user or one address may ask the registry
"is this name + ID a person, and what about them?".

Adversarial review 2026-12 (issue #17, finding 2): precheck, real-name verification, the
submit of an application and 家庭共济 authorization each answer differently for a name +
ID that matches the registry and one that does not — an oracle. A real person checks a
handful of family members; an enumerator needs thousands. So every such attempt spends
one unit of two daily budgets, per user and per client address, shared by all four
endpoints; beyond either the answer is 429 with ``Retry-After`` and nothing is looked up.
The numbers live in ``[family]`` (``identity_checks_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.ratelimit import hit


@dataclass(frozen=True)
class GuessBudget:
    per_user: int = 30
    per_ip: int = 200
    window_seconds: int = 86_400

    async def spend(self, redis: Any, *, user_id: int, ip: str | None) -> None:
        """Count one registry question; 429 (``RATE_LIMITED``) when a budget is spent."""
        await hit(
            redis, f"idcheck:user:{user_id}", limit=self.per_user, per_seconds=self.window_seconds
        )
        if ip:
            await hit(redis, f"idcheck:ip:{ip}", limit=self.per_ip, per_seconds=self.window_seconds)


__all__ = ["GuessBudget"]
