"""The whole demo walkthrough, then every log line and every file under DATA_DIR searched
for a person in clear (issue #12 "Proof"): no ID number, name or phone may appear.

The server is the README's run command (``python -m server`` on a fresh DATA_DIR: SQLite,
the in-process Redis, the fake WeChat, the push worker and the privacy job inside); the
walkthrough is the README's own shell block, run by bash with curl, followed by what the
README sends to other pages (a 共济 visit paid through the signed webhook) and the
privacy duties (a phone number on an application, a photo with GPS metadata, the export,
withdrawing a consent, deleting the account).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.factories import signed_headers
from tests.storage import samples

ROOT = Path(__file__).resolve().parents[2]
PHONE = "13912345678"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_walkthrough(port: int) -> str:
    """The ``sh`` block of README.md "Demo walkthrough", aimed at ``port``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Demo walkthrough", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md has no sh block in its demo walkthrough"
    script = block.group(1)
    assert "B=http://127.0.0.1:8080/api/v1" in script and "/privacy/consents" in script
    return script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")


def people() -> list[str]:
    """Every name and ID number of the demo registry, and the phone used below."""
    with open(ROOT / "config" / "demo_registry.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return sorted({r["name"] for r in rows} | {r["id_number"] for r in rows} | {PHONE})


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README walkthrough needs curl")
async def test_the_demo_walkthrough_leaves_no_person_in_clear(tmp_path: Path) -> None:
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_", "TEST_"))}
    env.update({"DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1"})
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _ready(http, base, server)
            # 1. the README, as written (bash + curl), in a directory of its own
            work = tmp_path / "shell"
            work.mkdir()
            shell = await asyncio.create_subprocess_exec(
                "bash", "-c", "set -e\n" + readme_walkthrough(port), cwd=work,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out = (await asyncio.wait_for(shell.communicate(), 120))[0].decode()
            assert shell.returncode == 0, out
            assert '"state":"active"' in out and out.rstrip().endswith("204"), out
            # 2. what the README points to next, and the privacy duties; DATA_DIR is
            # searched with the uploads still there, and again after the account is gone
            await _more(http, base, before_deletion=lambda: scan_files(data_dir, uploads=2))
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        log = (await asyncio.wait_for(server.communicate(), 30))[0].decode()
    assert server.returncode == 0, log
    assert "GET /api/v1/me/export" in log or "/api/v1/me/export" in log, "the access log is on"

    needles = people()
    in_log = [(n, line) for line in log.splitlines() for n in needles if n in line]
    assert in_log == [], in_log[:5]
    scan_files(data_dir, uploads=0)


def scan_files(data_dir: Path, *, uploads: int) -> None:
    """No file under DATA_DIR holds a name, ID number or phone in clear."""
    needles = people()
    files = files_under(data_dir)
    assert any(f.name == "qinqing.sqlite3" for f in files)
    assert len([f for f in files if "uploads" in f.parts]) == uploads, files
    for f in files:
        raw = f.read_bytes()
        found = [n for n in needles if n.encode() in raw]
        assert found == [], (f, found)


async def _ready(http: aiohttp.ClientSession, base: str, server: Any) -> None:
    for _ in range(300):  # up to 30 s for start-up (schema, demo data)
        try:
            async with http.get(base + "/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if server.returncode is not None:
            break
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


async def _call(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kw) as r:
        body = await r.read()
        assert r.status < 400, (method, url, r.status, body[:300])
        return json.loads(body) if body and r.content_type == "application/json" else body


async def _more(http: aiohttp.ClientSession, base: str, *, before_deletion: Callable[[], None]) -> None:
    api = base + "/api/v1"
    tokens = await _call(http, "POST", api + "/auth/login", json={"code": "demo-alice-walk"})
    t = tokens["access_token"]
    # 张伟 authorizes his mother's 共济; the demo hospital settles her visit
    notice = await _call(http, "GET", api + "/mutual-aid/notice", t)
    mother = {"name": "李秀英", "id_type": "resident_id", "id_number": "420102195806122242"}
    await _call(
        http, "POST", api + "/mutual-aid/authorizations", t,
        json={**mother, "relationship": "parent", "notice_version": notice["version"], "notice_sha256": notice["sha256"]},
    )
    body = json.dumps(
        {
            "setl_id": "WALK-1", "med_type": "11", "certno": mother["id_number"],
            "setl_time": "2026-12-01T09:30:00+08:00", "medfee_sumamt": "120.00",
            "hifp_pay": "80.00", "psn_part_amt": "40.00",
        },
        ensure_ascii=False,
    ).encode()
    async with http.post(
        base + "/api/v1/institution/settlements", data=body,
        headers=signed_headers("H00001", "demo-institution-secret", body),
    ) as r:
        assert r.status == 201, await r.text()
    # an application with the father's phone and a photo carrying GPS metadata
    father = {"name": "张建国", "id_type": "resident_id", "id_number": "420102195601011311",
              "relationship": "parent", "phone": PHONE}
    app = await _call(http, "POST", api + "/family/applications", t, json=father)
    form = aiohttp.FormData()
    form.add_field("kind", "household_register")
    form.add_field("file", samples.jpeg_with_metadata(orientation=6), filename="hukou.jpg")
    await _call(http, "POST", f"{api}/family/applications/{app['id']}/materials", t, data=form)
    export = await _call(http, "GET", api + "/me/export", t)
    assert export["format"] == "qinqing-export/1" and export["applications"]
    await _call(http, "DELETE", api + "/privacy/consents/medical_records", t)
    before_deletion()  # the 户口本 of the README and the photo above, sealed
    deleted = await _call(http, "DELETE", api + "/me", t)
    assert deleted["state"] == "done"
