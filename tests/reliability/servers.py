"""Private servers a fault-injection test may stop and start at will: a Redis, a
PostgreSQL cluster, and our own server as a child process — all on loopback ports.

The suite's shared PostgreSQL / Redis (scripts/test) must never be stopped; these are the
test's own. Each helper skips the test when the binaries are not installed
(``.ci/run`` installs them).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A free loopback port below the ephemeral range (STYLE.md): a port the kernel hands
    out for bind(0) may be handed to another process' outgoing connection — or another
    test's server — before ours binds it."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port in 20000-32000")


@dataclass
class PrivateRedis:
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "yes",
                "--pidfile", str(self.workdir / "redis.pid"),
                "--logfile", str(self.workdir / "redis.log"),
            ],
            check=True,
        )  # fmt: skip
        _wait_pong(self.port)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as d:
        r = PrivateRedis(free_port(), Path(d))
        r.start()
        try:
            yield r
        finally:
            r.stop()


def low_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports below the ephemeral range (a cluster node also
    needs port + its bus port free, so ports are picked, not handed out by the kernel)."""
    import random

    found: list[int] = []
    for _ in range(2000):
        p = random.randint(20000, 32000)
        if p in found:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        found.append(p)
        if len(found) == n:
            return found
    raise AssertionError("no free loopback ports")


@dataclass
class PrivateRedisCluster:
    """Three masters (no replicas) on loopback: every slot covered, 5461 or so each."""

    ports: list[int]
    bus_ports: list[int]
    workdir: Path

    @property
    def url(self) -> str:
        """The switch (server/redis_client.py): a ``redis+cluster://`` URL naming one node."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            subprocess.run(
                [
                    "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-port", str(bus),
                    "--cluster-config-file", str(self.workdir / f"nodes-{port}.conf"),
                    "--cluster-node-timeout", "2000",
                    "--save", "", "--appendonly", "no", "--daemonize", "yes",
                    "--dir", str(self.workdir),
                    "--pidfile", str(self.workdir / f"redis-{port}.pid"),
                    "--logfile", str(self.workdir / f"redis-{port}.log"),
                ],
                check=True,
            )  # fmt: skip
        for port in self.ports:
            _wait_pong(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for _ in range(200):  # every node must agree the cluster is up
            states = [
                subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True).stdout
                for p in self.ports
            ]
            if all(b"cluster_state:ok" in st for st in states):
                return
            subprocess.run(["sleep", "0.05"])
        raise AssertionError("redis cluster did not come up")

    def stop(self) -> None:
        for port in self.ports:
            subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)


def _wait_pong(port: int) -> None:
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return
        subprocess.run(["sleep", "0.05"])
    raise AssertionError(f"redis on {port} did not start")


@contextmanager
def private_redis_cluster(masters: int = 3) -> Iterator[PrivateRedisCluster]:
    """A real Redis Cluster of ``masters`` nodes on loopback, stopped on exit."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as d:
        ports = low_ports(2 * masters)
        cluster = PrivateRedisCluster(ports[:masters], ports[masters:], Path(d))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@dataclass
class PrivatePostgres:
    port: int
    datadir: Path
    as_pg: list[str]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_pg, str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.datadir / "log"), "-w", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (.ci/run installs it)")
    as_pg: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="qq-pg-", dir="/tmp"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        as_pg = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    datadir = root / "pg"
    try:
        subprocess.run(
            [*as_pg, str(PG_BIN / "initdb"), "-D", str(datadir), "--auth=trust", "-U", "postgres", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        pg = PrivatePostgres(free_port(), datadir, as_pg)
        pg.start()
        try:
            yield pg
        finally:
            try:
                pg.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # already stopped by the test
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def server_process(env_extra: dict[str, str], workdir: Path) -> Iterator[str]:
    """``python -m server`` on a free loopback port; yields its base URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "WECHAT_", "FACE_"))},
        "APP_ENV": "local",
        "DATA_DIR": str(workdir / "data"),
        "RUN_WORKER": "false",
        **env_extra,
    }
    for var in ("CONFIG_FILE", "HOST", "PORT", "DATABASE_URL", "REDIS_URL"):
        if var not in env_extra:
            env.pop(var, None)
    argv = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
    log = open(workdir / "server.log", "wb")  # noqa: SIM115  # the child keeps its copy
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    RUNNING[base] = (proc, workdir / "server.log")
    try:
        yield base
    finally:
        RUNNING.pop(base, None)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# base URL → (our child, its log): a server that died (its port taken, a bad setting) must
# fail the test with its log, not leave the test talking to whatever else holds the port
RUNNING: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}


def server_alive(base: str) -> None:
    """Fail, with its log, when the server started at ``base`` has exited."""
    proc, log = RUNNING[base]
    if proc.poll() is not None:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(f"the server at {base} exited ({proc.returncode}):\n{tail}")


def server_errors(base: str) -> str:
    """The tracebacks and error lines in the log of the server started at ``base``: for
    an assertion message when it answered something it should not have."""
    _, log = RUNNING[base]
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    errors = [i for i, line in enumerate(lines) if " ERROR " in line]
    out: list[str] = []
    for i in errors[:3]:  # the first errors, with their tracebacks
        out.extend(lines[i : i + 45])
    return "\n".join(out)[:8000] or "(no ERROR line in the server log)"


async def wait_ready(session: aiohttp.ClientSession, base: str, *, seconds: float = 60) -> None:
    for _ in range(int(seconds * 10)):
        if base in RUNNING:
            server_alive(base)
        try:
            async with session.get(f"{base}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{base} did not become ready")
