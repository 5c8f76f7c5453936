"""Load generators: wrk with a generated Lua script, or an external command.

The same wrk invocation (1 thread, N connections, fixed duration after a short warmup)
drives the baseline and every scenario, so the ratio compares servers, not clients.
wrk's own ``done()`` hook prints one JSON line with the numbers we keep.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import LOOPBACK, run_bounded
from bench.services import ROOT
from bench.stats import RunResult

WRK = shutil.which("wrk") or "/usr/bin/wrk"

_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Wrk:
    """A wrk load: a fixed request, or ``lua`` defining wrk's ``request`` function.

    ``lua`` may use anything of wrk's Lua API (``wrk.format``, ``init``, ``response``)
    and the global ``bench_run`` (unique per wrk invocation); the harness appends the
    ``done`` hook that reports the numbers.
    """

    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    lua: str = ""


@dataclass
class Command:
    """An external generator: prints one JSON line ``{"name", "rps", "p50_ms", "p99_ms"}``.

    It gets ``BENCH_URL``, ``BENCH_DURATION`` (s) and ``BENCH_CONNECTIONS`` in its
    environment, must only talk to ``BENCH_URL`` (loopback) and stop by itself.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


Load = Wrk | Command


def lua_string(value: str) -> str:
    """A Lua string literal (JSON escaping is a subset Lua understands for ASCII)."""
    return json.dumps(value, ensure_ascii=True)


def _script(load: Wrk, run_id: str) -> str:
    # ``bench_run`` differs on every wrk invocation (warmup and measured run included):
    # scenarios use it to make single-use values unique, e.g. demo login codes.
    parts = [f"bench_run = {lua_string(run_id)}", f"wrk.method = {lua_string(load.method)}"]
    for k, v in load.headers.items():
        parts.append(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}")
    if load.body is not None:
        parts.append(f"wrk.body = {lua_string(load.body)}")
    parts.append(load.lua)
    parts.append(_DONE)
    return "\n".join(parts)


def run_wrk(load: Wrk, base_url: str, *, duration: float, connections: int, workdir: Path,
            name: str) -> RunResult:
    if not base_url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError(f"refusing a non-loopback target {base_url}")
    run_id = secrets.token_hex(6)
    script = workdir / f"{name}-{run_id}.lua"
    script.write_text(_script(load, run_id))
    argv = [WRK, "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s",
            "-s", str(script), base_url + load.path]
    out = run_bounded(argv, timeout=duration + 30)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            d = json.loads(line[len("BENCH_JSON "):])
            seconds = d["duration_us"] / 1e6
            errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
            return RunResult(rps=d["requests"] / seconds if seconds else 0.0,
                             p50_ms=d["p50_us"] / 1000, p99_ms=d["p99_us"] / 1000,
                             requests=d["requests"], errors=errors)
    raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")


def run_command(load: Command, base_url: str, *, duration: float, connections: int) -> RunResult:
    env = {**os.environ, **load.env, "BENCH_URL": base_url, "BENCH_DURATION": f"{duration:g}",
           "BENCH_CONNECTIONS": str(connections)}
    out = run_bounded(load.argv, timeout=duration * 4 + 60, env=env, cwd=ROOT)
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            errors = d.get("errors", 0)  # a count, or {kind: count}
            if isinstance(errors, dict):
                errors = sum(errors.values())
            return RunResult(rps=float(d["rps"]), p50_ms=float(d["p50_ms"]), p99_ms=float(d["p99_ms"]),
                             requests=int(d.get("requests", d.get("ok", 0))), errors=int(errors))
    raise RuntimeError(f"{load.argv[0]} printed no JSON result line:\n{out[-2000:]}")
