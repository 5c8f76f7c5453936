"""Settlements (national 2206 / 2207 / 2208 and 3201-style 对账), room by room:

* :mod:`.request` — the 2207 / 2208 bodies: exact yuan-string ↔ 分 conversion at the
  edge, validation incl. the 政策范围内 breakdown (``parse_request``, ``parse_reversal``,
  ``yuan_to_fen``, ``fen_to_yuan``);
* :mod:`.split` — the pure rule, ``compute_split`` (no I/O; property-tested);
* :mod:`.plan` — who pays what for this member and these balances (policy around the
  split; no I/O), shared by the two below;
* :mod:`.service` — the use cases: ``settle`` / ``reverse`` / ``verify_voucher``
  (transactions, row locks, the ledger, the notice outbox);
* :mod:`.preview` — 2206: the split a 2207 would apply now, nothing stored, no lock;
* :mod:`.reconciliation` — an institution's day of 2207 / 2208 events (API and CLI);
  :mod:`.reconcile_file` — the bureau's CSV of it, compared with the institution's file;
* :mod:`.queries` — the read side: a member's settlements and yearly totals (binders).

The hand-written SQL of the hot path lives in ``server.domain.money_sql``; who the
calling institution is, in ``server.domain.institutions``. Import from the room
(``from server.domain.settlements.service import settle``); this package re-exports
nothing.
"""
