"""Which failures mean "a dependency is down" (API.md: 503, nothing half-written).

PostgreSQL restarting, Redis stopped, a pooled connection that died: the request cannot
be served now but may be in a moment. The error middleware answers those 503
``SERVICE_UNAVAILABLE`` with ``Retry-After`` instead of a 500 (issue #17 finding 5); the
transaction the request was in has rolled back, so nothing is half-written. The
exception may arrive wrapped (Tortoise re-raises driver errors as its own), so the whole
cause chain is looked at.
"""

from __future__ import annotations

import asyncpg.exceptions as pg
import redis.exceptions as redis_errors
from tortoise.exceptions import DBConnectionError

DOWN: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # also BusyLoadingError (Redis still loading)
    redis_errors.TimeoutError,
    # a Redis Cluster failing over or resharding (redis+cluster://, docs/reliability.md)
    redis_errors.ClusterDownError,  # also MasterDownError
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    DBConnectionError,
    pg.PostgresConnectionError,  # ConnectionDoesNotExist, ConnectionFailure, CannotConnectNow …
    pg.InterfaceError,  # "connection is closed" on a pooled connection
    pg.OperatorInterventionError,  # AdminShutdown / CrashShutdown: the server is restarting
    pg.TooManyConnectionsError,
    # the server's FATAL "terminating connection due to administrator command" arrived on
    # an idle pooled connection: asyncpg's protocol is left consuming it, and the next
    # query on that connection fails with "cannot switch to state …" (issue #15, found
    # by restarting PostgreSQL under a settlement load: a 500 before)
    pg.InternalClientError,
    ConnectionRefusedError,
    ConnectionResetError,
)

RETRY_AFTER_SECONDS = 5


def dependency_down(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause chain) says a dependency is unreachable."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if isinstance(cur, DOWN):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


__all__ = ["DOWN", "RETRY_AFTER_SECONDS", "dependency_down"]
