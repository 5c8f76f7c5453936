"""Bulk work at a province's scale: streamed CSV in, set-based writes, honest reports.

* ``source``   — a CSV read as a stream of batches (memory flat), with line numbers;
* ``report``   — the reject CSV (reason per line, ID masked), the progress bar / log lines;
* ``session``  — one connection for a run, the same API on PostgreSQL (COPY) and SQLite;
* ``pipeline`` — read → prepare (a thread) → write (a transaction per batch), overlapped;
* ``balances`` — set-based ledger postings (one statement per batch, the ledger's rules);
* ``export``   — a query streamed out to CSV (reconciliation exports, deletion scans);
* ``registry_rows`` / ``registry_import`` — the registry import built from the above.

docs/bulk.md says how to run it, what it costs, and how the next bulk job reuses it.
"""
