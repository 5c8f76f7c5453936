"""Settlements (national 2207 / 2208), in four rooms:

* :mod:`.request` — the 2207 / 2208 bodies: exact yuan-string ↔ 分 conversion at the
  edge, validation (``parse_request``, ``parse_reversal``, ``yuan_to_fen``,
  ``fen_to_yuan``);
* :mod:`.split` — the pure rule, ``compute_split`` (no I/O; property-tested);
* :mod:`.service` — the use cases: ``settle`` / ``reverse`` / ``verify_voucher``
  (transactions, row locks, the ledger, the notice outbox); ``_plan`` decides what a
  settlement does from the member and the balances, apart from writing it;
* :mod:`.queries` — the read side: a member's settlements and yearly totals (binders).

The hand-written SQL of the hot path lives in ``server.domain.money_sql``; who the
calling institution is, in ``server.domain.institutions``. Import from the room
(``from server.domain.settlements.service import settle``); this package re-exports
nothing.
"""
