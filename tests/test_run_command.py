"""The README's run command really serves the demo on a fresh data directory."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_env(data_dir: Path, port: int) -> dict[str, str]:
    """The README's run command's environment: nothing but a data directory and a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_", "TEST_"))}
    env.update({"DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1"})
    return env


async def test_python_m_server_serves_the_demo(tmp_path: Path) -> None:
    port = _free_port()
    env = demo_env(tmp_path / "data", port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # up to 60 s for start-up (migrations + demo data, on a busy machine)
                try:
                    async with http.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            async with http.post(base + "/api/v1/auth/login", json={"code": "demo-alice-1"}) as r:
                assert r.status == 200, await r.text()
                tokens = await r.json()
            async with http.get(base + "/api/v1/me", headers={"Authorization": "Bearer " + tokens["access_token"]}) as r:
                assert r.status == 200
    finally:
        if proc.returncode is None:
            proc.terminate()
        output = (await asyncio.wait_for(proc.communicate(), 20))[0].decode()
    assert (tmp_path / "data" / "qinqing.sqlite3").exists()
    assert f"listening on {base}" in output and "curl" in output
    # the embedded fake WeChat posts template receipts to this server's own webhook
    assert f"receipts to {base}/wechat/official" in output
    assert proc.returncode == 0, output  # SIGTERM → graceful shutdown
