"""The fast part of `make proof` that `make test` runs (docs/reliability.md "Proof"):

* a 30-second soak on real PostgreSQL + Redis (bench/soak.py): no error, resources flat;
* the hot queries on a few 100,000 rows (bench/province.py --scale 0.03): no sequential
  scan on a table of more than 5,000 rows.

Both start their own servers on loopback and stop them; they run in the PostgreSQL pass
of scripts/test only (TEST_DATABASE_URL set), once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.province import SEQ_SCAN

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

needs_servers = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL")
    or shutil.which("redis-server") is None
    or not (PG_BIN / "initdb").exists(),
    reason="the PostgreSQL pass of scripts/test only (redis-server and PostgreSQL 15 needed)",
)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@needs_servers
def test_a_short_soak_has_no_error_and_flat_resources() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.5", "--capacity-seconds", "5",
         "--window", "2", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.stdout, proc.stderr[-3000:]
    result = _last_json(proc.stdout)
    assert result["requests"] > 0 and result["errors"] == 0, proc.stdout[-3000:]
    checks = result["checks"]
    # 30 s is too short to judge a latency trend on a shared machine: the 10-minute soak
    # of `make proof` does; every other rule holds here already
    judged = {k: v for k, v in checks.items() if k != "p99 latency steady"}
    assert judged and all(judged.values()), proc.stdout[-3000:]


@needs_servers
def test_hot_queries_scan_no_big_table_at_a_few_100k_rows() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.province", "--scale", "0.03", "--iterations", "20", "--no-partitions",
         "--big", "5000", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.stdout, proc.stderr[-3000:]
    result = _last_json(proc.stdout)
    assert set(result["queries"]) == {
        "login_openid", "realname_id_hash", "members_list", "yearly_summary",
        "settlement_locks", "notice_claim", "reconciliation_day",
    }
    assert result["ok"] and proc.returncode == 0, result["seq_scans"]


def test_the_plan_check_sees_a_seq_scan() -> None:
    plan = (
        "Sort  (cost=119.62..119.63 rows=2 width=256)\n"
        "  ->  Nested Loop Left Join\n"
        "        ->  Seq Scan on bindings  (cost=0.00..103.00 rows=2 width=42)\n"
        "        ->  Index Scan using insured_persons_pkey on insured_persons bindings__member\n"
    )
    assert SEQ_SCAN.findall(plan) == ["bindings"]
    assert SEQ_SCAN.findall("Index Scan using idx_bindings_binder on bindings") == []
