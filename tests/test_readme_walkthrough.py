"""The README's demo walkthrough, run as written (bash + curl) against `python -m server`.

The blocks of README.md's "Demo walkthrough" are concatenated and run in one bash shell
against a fresh server on a free port; the test checks the outcomes the README's comments
promise — so the README stays true when the API moves.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.test_run_command import _free_port, demo_env

ROOT = Path(__file__).resolve().parent.parent


def walkthrough_script(port: int) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Demo walkthrough", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2, "the walkthrough lost a block"
    script = "\n".join(blocks).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    return "set -u\n" + script


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_readme_walkthrough_does_what_it_says(tmp_path: Path) -> None:
    port = _free_port()
    env = demo_env(tmp_path / "data", port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # up to 30 s for start-up (schema migration + demo data)
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.returncode is None, "the server stopped"
                await asyncio.sleep(0.1)
        work = tmp_path / "shell"
        work.mkdir()
        # the member_bound notice is delivered by the embedded push worker: the last
        # command of the walkthrough polls for it (bounded) as a reader would re-run it
        script = walkthrough_script(port) + (
            '\nfor i in $(seq 50); do curl -s $B/notices -H "$HM" | grep -q delivered && break; sleep 0.2; done'
            '\necho; curl -s $B/notices -H "$HM"\n'
        )
        done = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=120
        )
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "INTERNAL" not in out and "Traceback" not in out
    assert out.count('"realname_verified":true') >= 3  # 张伟, 李秀英, 吴婷
    assert '"state":"active"' in out  # the first binding, and 刘桂兰's after the fix
    assert "204" in out  # the unbind
    assert '"code":"FACE_CHECK_FAILED"' in out and '"state":"needs_action"' in out
    assert '"fix":' in out
    assert '"member_activated":true' in out
    assert '"voucher_activated":true' in out.split('"member_activated":true', 1)[1]
    last = out.strip().splitlines()[-1]
    assert '"kind":"member_bound"' in last and '"state":"delivered"' in last
    assert "420102195806122242" not in last  # masked
