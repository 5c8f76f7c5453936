"""The processes under test and their backing servers, all on loopback, all throw-away.

* ``bare``: :mod:`bench.bare_app`, the baseline;
* ``pg``: ``python -m server`` on a throw-away PostgreSQL 15 + Redis;
* ``sqlite``: ``python -m server`` on a SQLite file in a temp dir + the same Redis.

PostgreSQL and Redis are started like scripts/test does (``runuser -u postgres`` for
initdb/pg_ctl when root) and stopped by the harness's :class:`~bench.procs.Stack`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import LOOPBACK, Stack, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class Target:
    """A running HTTP process that load is sent to."""

    name: str
    port: int
    pid: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """One plain HTTP call for a scenario's set-up (not timed)."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def login(self, user: str, code_suffix: str) -> dict[str, Any]:
        """Log in demo user ``user`` (API.md demo convention) and return the token body."""
        status, body = self.request("POST", "/api/v1/auth/login", {"code": f"demo-{user}-{code_suffix}"})
        if status != 200:
            raise RuntimeError(f"login of {user} failed: {status} {body}")
        return body


# Per-user rate limits a single bench client would hit at once (the family flows bind
# hundreds of members per second from a few binders; 500 followers send the bot thousands
# of messages a minute, and the bot scenarios measure answering, not the flood guard);
# nothing else differs from default.toml.
BENCH_OVERLAY = """
[family]
applications_per_window = 1000000
submits_per_window = 1000000
vouchers_per_window = 1000000
identity_checks_per_user = 1000000
identity_checks_per_ip = 1000000
uploads_per_hour = 1000000
upload_budget_bytes = 1000000000000

[auth]
logins_per_ip_per_minute = 1000000

[bot]
rate_limit_per_minute = 1000000000
allow_plain_mode = true            # the bot_plain scenario sends plain pushes
user_info_per_minute = 1000000000  # thousands of bench followers are looked up at once
user_info_per_hour = 1000000000
new_followers_per_minute = 1000000000
new_followers_per_hour = 1000000000
"""

class Services:
    """Starts what the selected scenarios need, once, and hands out :class:`Target` s."""

    def __init__(self, stack: Stack, workdir: Path) -> None:
        self.stack = stack
        self.workdir = workdir
        self._targets: dict[str, Target] = {}
        self._redis_url: str | None = None
        self._pg_url: str | None = None

    def target(self, name: str) -> Target:
        if name not in self._targets:
            starter = {"bare": self._start_bare, "pg": self._start_pg_server,
                       "sqlite": self._start_sqlite_server}.get(name)
            if starter is None:
                raise ValueError(f"unknown target {name!r} (bare, pg, sqlite)")
            self._targets[name] = starter()
        return self._targets[name]

    # -- backing servers -----------------------------------------------------------
    def redis_url(self) -> str:
        if self._redis_url is None:
            if shutil.which("redis-server") is None:
                raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
            port = free_port()
            log = self.workdir / "redis.log"
            proc = self.stack.popen("redis", ["redis-server", "--port", str(port), "--bind", LOOPBACK,
                                              "--save", "", "--appendonly", "no"], log=log)
            _wait_tcp(port, proc, log)
            self._redis_url = f"redis://{LOOPBACK}:{port}"
        return self._redis_url

    def pg_url(self) -> str:
        if self._pg_url is None:
            if not (PG_BIN / "initdb").exists():
                raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)")
            port = free_port()
            pgdir = Path(tempfile.mkdtemp(prefix="qq-bench-pg-"))
            pgdir.chmod(0o755)
            as_pg: list[str] = []
            if os.geteuid() == 0:
                as_pg = ["runuser", "-u", "postgres", "--"]
                shutil.chown(pgdir, "postgres")
            self.stack.push("pg dir", lambda: shutil.rmtree(pgdir, ignore_errors=True))
            subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(pgdir / "data"), "--auth=trust",
                            "-U", "postgres", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
            opts = (f"-p {port} -k {pgdir} -c listen_addresses={LOOPBACK} -c fsync=off "
                    f"-c max_connections=200 -c shared_buffers=64MB")
            self.stack.push("postgres", lambda: subprocess.run(
                [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(pgdir / "data"), "-m", "immediate", "stop"],
                capture_output=True, timeout=60))
            subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(pgdir / "data"), "-l",
                            str(pgdir / "pg.log"), "-w", "-o", opts, "start"],
                           check=True, capture_output=True, timeout=120)
            subprocess.run([*as_pg, str(PG_BIN / "createdb"), "-h", LOOPBACK, "-p", str(port),
                            "-U", "postgres", "qinqing_bench"], check=True, capture_output=True, timeout=60)
            self._pg_url = f"postgres://postgres@{LOOPBACK}:{port}/qinqing_bench"
        return self._pg_url

    # -- HTTP processes ------------------------------------------------------------
    def _start_bare(self) -> Target:
        port = free_port()
        log = self.workdir / "bare.log"
        proc = self.stack.popen("bare app", [sys.executable, "-m", "bench.bare_app", "--port", str(port)],
                                log=log, cwd=ROOT)
        wait_http(f"http://{LOOPBACK}:{port}/", proc, log=log)
        return Target("bare", port, proc.pid, log)

    def _start_server(self, name: str, database_url: str, redis_db: int) -> Target:
        port = free_port()
        data_dir = self.workdir / f"data-{name}"
        data_dir.mkdir()
        log = self.workdir / f"server-{name}.log"
        overlay = self.workdir / "bench-overlay.toml"
        overlay.write_text(BENCH_OVERLAY)
        env = {
            **os.environ,
            "APP_ENV": "local",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "REDIS_URL": f"{self.redis_url()}/{redis_db}",
            "DEMO_DATA": "true",
            "RUN_WORKER": "false",
            "CONFIG_FILE": str(overlay),
        }
        for var in ("WECHAT_API_BASE", "HOST", "PORT"):
            env.pop(var, None)
        argv = [sys.executable, "-m", "server", "--host", LOOPBACK, "--port", str(port)]
        proc = self.stack.popen(f"server ({name})", argv, log=log, env=env, cwd=ROOT)
        wait_http(f"http://{LOOPBACK}:{port}/readyz", proc, log=log)
        return Target(name, port, proc.pid, log, env={k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DATA_DIR", "CONFIG_FILE")})

    def _start_pg_server(self) -> Target:
        return self._start_server("pg", self.pg_url(), 0)

    def _start_sqlite_server(self) -> Target:
        data = self.workdir / "data-sqlite"
        return self._start_server("sqlite", f"sqlite://{data}/qinqing.sqlite3", 1)


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited early: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout:.0f} s")
