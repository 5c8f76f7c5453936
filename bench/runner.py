"""Rounds: for each scenario, bare → scenario → bare; repeated interleaved; then report."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Command, Load, Wrk, run_command, run_wrk
from bench.procs import RssSampler, Stack, machine_info, wait_idle
from bench.scenario import Scenario
from bench.services import ROOT, Services, Target
from bench.stats import RoundResult, RunResult, ScenarioSummary, markdown_table

BARE = Wrk(path="/")


@dataclass
class Options:
    rounds: int = 3
    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 32
    idle_threshold: float = 0.85
    idle_timeout: float = 60.0


class Runner:
    def __init__(self, opts: Options, services: Services, workdir: Path) -> None:
        self.opts = opts
        self.services = services
        self.workdir = workdir
        self.not_idle: list[str] = []
        self.failed: dict[str, str] = {}

    def measure(self, label: str, load: Load, target: Target) -> RunResult:
        idle, fraction = wait_idle(threshold=self.opts.idle_threshold, timeout=self.opts.idle_timeout)
        if not idle:
            self.not_idle.append(f"{label}: CPU idle {fraction:.0%} after {self.opts.idle_timeout:.0f} s")
            print(f"  ! machine not idle before {label} ({fraction:.0%} idle); measuring anyway", flush=True)
        kw: dict[str, Any] = {"connections": self.opts.connections}
        if isinstance(load, Command):
            with RssSampler(target.pid) as rss:
                result = run_command(load, target.base_url, duration=self.opts.duration, **kw)
        else:
            if self.opts.warmup > 0:
                run_wrk(load, target.base_url, duration=self.opts.warmup, workdir=self.workdir,
                        name=label, **kw)
            with RssSampler(target.pid) as rss:
                result = run_wrk(load, target.base_url, duration=self.opts.duration,
                                 workdir=self.workdir, name=label, **kw)
        result.max_rss_mb = rss.max_mb
        if rss.cpu_seconds is not None and result.requests:
            result.cpu_us_per_request = rss.cpu_seconds * 1e6 / result.requests
        result.idle_ok = idle
        print(f"  {label:<28} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
              f"p99 {result.p99_ms:7.2f} ms  cpu {result.cpu_us_per_request or 0:5.0f} µs/req  "
              f"rss {result.max_rss_mb or 0:4.0f} MB  "
              f"errors {result.errors}", flush=True)
        return result

    def run(self, scenarios: list[Scenario]) -> list[ScenarioSummary]:
        bare = self.services.target("bare")
        for s in scenarios:  # start every process first: rounds then only measure
            self.services.target(s.target)
        summaries = {s.name: ScenarioSummary(s.name, s.title) for s in scenarios}
        for r in range(1, self.opts.rounds + 1):
            print(f"round {r}/{self.opts.rounds}", flush=True)
            for s in scenarios:
                target = self.services.target(s.target)
                if s.name in self.failed:
                    continue
                try:
                    load = s.prepare(target, r)
                    try:
                        before = self.measure(f"bare (before {s.name})", BARE, bare)
                        result = self.measure(s.name, load, target)
                        after = self.measure(f"bare (after {s.name})", BARE, bare)
                    finally:
                        if s.teardown is not None:
                            s.teardown(target, load)
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    # one scenario's failure (a generator that timed out on a busy machine)
                    # must not throw away every other scenario's figures: it is recorded,
                    # left out of the later rounds, and fails `--compare`
                    self.failed[s.name] = f"round {r}: {type(exc).__name__}: {str(exc)[:300]}"
                    print(f"  ! {s.name} failed, left out: {self.failed[s.name]}", flush=True)
                    continue
                summaries[s.name].rounds.append(RoundResult(before, result, after))
        return [v for v in summaries.values() if v.rounds]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!bench/results"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def report(summaries: list[ScenarioSummary], opts: Options, not_idle: list[str],
           out_base: Path, failed: dict[str, str] | None = None) -> str:
    wrk_version = ""
    wrk = shutil.which("wrk")
    if wrk:
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = (proc.stdout or proc.stderr).splitlines()[0] if (proc.stdout or proc.stderr) else ""
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": machine_info(),
        "python": platform.python_version(),
        "generator": wrk_version,
        "options": opts.__dict__,
        "not_idle": not_idle,
    }
    if failed:
        meta["failed"] = failed
    doc = {"meta": meta, "scenarios": [s.as_dict() for s in summaries]}
    out_base.parent.mkdir(parents=True, exist_ok=True)
    out_base.with_suffix(".json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    m = meta["machine"]
    lines = [
        f"# Benchmark run {meta['date']} (commit {meta['commit']})",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), Python {meta['python']}, {wrk_version}; "
        f"{opts.rounds} interleaved rounds of bare → scenario → bare, {opts.warmup:g} s warmup + "
        f"{opts.duration:g} s each, {opts.connections} connections, 1 wrk thread, loopback. "
        "Ratios: scenario ÷ median(bare before, bare after), median over rounds. "
        "CPU µs/req: the loaded process's CPU time per request (robust to a busy machine); "
        "max RSS: its peak resident set while under load.",
        "",
        markdown_table(summaries),
        "",
    ]
    if failed:
        lines += ["Scenarios that failed (left out of the table):", ""]
        lines += [f"- {name}: {why}" for name, why in failed.items()] + [""]
    if not_idle:
        lines += ["Measured on a busy machine (idle check timed out):", ""]
        lines += [f"- {x}" for x in not_idle] + [""]
    text = "\n".join(lines)
    out_base.with_suffix(".md").write_text(text)
    return text


def run_all(scenarios: list[Scenario], opts: Options, out_base: Path) -> str:
    stack = Stack()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="qq-bench-"))
        stack.push("workdir", lambda: shutil.rmtree(workdir, ignore_errors=True))
        services = Services(stack, workdir)
        runner = Runner(opts, services, workdir)
        summaries = runner.run(scenarios)
    finally:
        stack.close()
    return report(summaries, opts, runner.not_idle, out_base, runner.failed)
