"""Real `python -m server worker` processes against PostgreSQL + Redis + the fake WeChat.

Pass 2 of ./scripts/test only: SQLite is one embedded process by design.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web

from fakes.wechat import FakeWeChatState
from server.domain.models import Notice
from tests.conftest import PG_URL, REDIS_URL
from tests.push.factories import make_notices, make_user, notice_id_of

pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL), reason="several worker processes need PostgreSQL + Redis"
)

ROOT = Path(__file__).resolve().parents[2]

PUSH_TOML = """
[wechat]
timeout_seconds = 0.5
[push]
lease_seconds = 4
batch_size = {batch}
backoff_base_seconds = 0.01
backoff_cap_seconds = 0.05
rate_per_second = 100000.0
rate_burst = 10000
idle_poll_seconds = 0.05
queue_gauge_seconds = 1.0
"""


def spawn(
    tmp_path: Path, base_url: str, name: str, *, concurrency: int = 8, batch: int = 50
) -> subprocess.Popen[bytes]:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(PUSH_TOML.format(batch=batch))
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": PG_URL,
        "REDIS_URL": REDIS_URL,
        "WECHAT_API_BASE": base_url,
        "CONFIG_FILE": f"test.toml,{cfg}",
        "PUSH_METRICS_PORT": "0",
        "DATA_DIR": str(tmp_path / "data"),
    }
    with open(tmp_path / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "server", "worker", "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_started(tmp_path: Path, *names: str, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.1)):  # bounded
        if all(b"started" in (tmp_path / f"{n}.log").read_bytes() for n in names):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("workers did not start")


async def scrape_metrics(tmp_path: Path, name: str) -> str:
    """GET the worker's /metrics (its URL is the line it prints on start)."""
    import re

    import aiohttp

    log = (tmp_path / f"{name}.log").read_text()
    url = re.search(r"metrics on (http://\S+/metrics)", log)
    assert url, log
    async with aiohttp.ClientSession() as session, session.get(url.group(1)) as resp:
        assert resp.status == 200
        return await resp.text()


async def wait_until_drained(*procs: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.1)):  # bounded
        if not await Notice.filter(state="pending").exists():
            return
        for p in procs:
            assert p.poll() is None, f"worker exited with {p.returncode}"
        await asyncio.sleep(0.1)
    raise AssertionError("notices still pending")


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


async def test_two_workers_deliver_1000_once_each(
    app: web.Application, fake_wechat: tuple[str, FakeWeChatState], tmp_path: Path
) -> None:
    base_url, state = fake_wechat
    users = [await make_user(f"w{i}", follower=True) for i in range(20)]
    await make_notices(users, 1000)
    # not due until both workers run: else the first one up could take them all
    await Notice.all().update(next_attempt_at=datetime.now(timezone.utc) + timedelta(hours=1))
    procs = [spawn(tmp_path, base_url, f"worker{i}") for i in range(2)]
    try:
        await wait_started(tmp_path, "worker0", "worker1")
        await Notice.all().update(next_attempt_at=None)
        await wait_until_drained(*procs)
        metrics = await scrape_metrics(tmp_path, "worker0")
        stopped_cleanly = True
    finally:
        stop(*procs)
    assert stopped_cleanly and all(p.returncode == 0 for p in procs)
    assert await Notice.filter(state="sent").count() == 1000
    counts = collections.Counter(notice_id_of(m) for m in state.sent_messages())
    assert len(counts) == 1000, "a notice is missing"
    assert set(counts.values()) == {1}, "a notice was sent twice"
    workers = await Notice.all().distinct().values_list("leased_by", flat=True)
    assert len(set(workers)) == 2, "both workers took a share"
    assert state.tokens_issued == 1  # one shared token for both processes
    # each worker serves its own /metrics (README "Push delivery")
    assert 'push_sends_total{channel="template",errcode="0",result="ok"}' in metrics
    assert "push_queue_depth" in metrics and "push_send_latency_seconds_bucket" in metrics


async def test_sigkilled_worker_leaves_its_batch_to_another(
    app: web.Application, fake_wechat: tuple[str, FakeWeChatState], tmp_path: Path
) -> None:
    base_url, state = fake_wechat
    users = [await make_user(f"k{i}", follower=True) for i in range(10)]
    await make_notices(users, 300)
    state.configure(stall_seconds=0.05)  # ~160 sends/s: the kill lands mid-batch
    first = spawn(tmp_path, base_url, "doomed", concurrency=8, batch=100)
    try:
        for _ in range(300):  # bounded: until the worker is well into its first batch
            if state.sent_counts["template"] >= 40:
                break
            assert first.poll() is None, "worker exited early"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    orphans = await Notice.filter(state="pending", lease_until__isnull=False).values_list(
        "id", "leased_by"
    )
    assert orphans, "the kill should leave claimed, unsent notices behind"
    doomed = orphans[0][1]

    second = spawn(tmp_path, base_url, "rescuer", concurrency=8, batch=100)
    try:
        await wait_until_drained(second)
    finally:
        stop(second)
    assert await Notice.filter(state="sent").count() == 300
    orphan_ids = [o[0] for o in orphans]
    rescued = await Notice.filter(id__in=orphan_ids).values_list("leased_by", flat=True)
    assert doomed not in rescued, "the other worker re-claimed them after the lease"
    counts = collections.Counter(notice_id_of(m) for m in state.sent_messages())
    assert len(counts) == 300, "a notice is missing"
    duplicates = sum(c - 1 for c in counts.values())
    # only within the crash window: the chunks in flight (2 lanes × 8 sends)
    assert duplicates <= 16, duplicates
