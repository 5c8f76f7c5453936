"""Processes the harness starts, and the machine checks around them.

Everything started here is registered in one :class:`Stack` and stopped in reverse
order by ``Stack.close()``: the harness calls it in a ``finally``, at exit, and on
SIGTERM/SIGHUP (Ctrl-C raises KeyboardInterrupt and reaches the ``finally``).
Only loopback addresses are ever used.
"""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import cpu_idle_fraction

LOOPBACK = "127.0.0.1"


class Stack:
    """Cleanup callbacks, run once each in reverse order, whatever happened."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[str, Callable[[], None]]] = []
        self._closed = False
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds to the caller's finally → close()

    def push(self, name: str, fn: Callable[[], None]) -> None:
        self._callbacks.append((name, fn))

    def close(self) -> None:
        while self._callbacks:
            name, fn = self._callbacks.pop()
            try:
                fn()
            except Exception as exc:  # keep stopping the rest
                print(f"bench: stopping {name} failed: {exc!r}", flush=True)
        self._closed = True

    def popen(self, name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running child in its own session; it is stopped by :meth:`close`."""
        out = open(log, "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.push(name, lambda: stop_process(proc))
        return proc


class Children(Stack):
    """A :class:`Stack` for standalone scripts: ``start`` logs each child to ``logdir/NAME.log``."""

    def __init__(self, logdir: Path, cwd: Path | None = None) -> None:
        super().__init__()
        self.logdir = logdir
        self.cwd = cwd

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.popen(name, argv, log=self.logdir / f"{name}.log", env=env, cwd=self.cwd)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process we started (by its id), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    """A free loopback port below the ephemeral range (like scripts/test)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, *, timeout: float = 90.0,
              log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{url}: process exited with {proc.returncode}\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s")


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def wait_idle(*, threshold: float = 0.85, timeout: float = 60.0, sample: float = 1.0) -> tuple[bool, float]:
    """Wait until the CPUs are at least ``threshold`` idle over one ``sample``.

    Returns (became idle, last idle fraction); on timeout the caller records that the
    measurement ran on a busy machine.
    """
    deadline = time.monotonic() + timeout
    idle = 0.0
    while True:
        before = _cpu_times()
        time.sleep(sample)
        idle = cpu_idle_fraction(before, _cpu_times())
        if idle >= threshold:
            return True, idle
        if time.monotonic() >= deadline:
            return False, idle


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples a process's resident set every ``interval`` seconds while in the ``with``,
    and the CPU time it used meanwhile (``cpu_seconds``)."""

    def __init__(self, pid: int | None, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.max_mb: float | None = None
        self.cpu_seconds: float | None = None
        self._cpu_start: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.pid is not None:
                value = rss_mb(self.pid)
                if value is not None and (self.max_mb is None or value > self.max_mb):
                    self.max_mb = value
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._cpu_start = cpu_seconds(self.pid) if self.pid is not None else None
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        end = cpu_seconds(self.pid) if self.pid is not None else None
        self.cpu_seconds = None if end is None or self._cpu_start is None else end - self._cpu_start


def run_bounded(argv: list[str], *, timeout: float, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> str:
    """Run a bounded command (wrk, an external generator) and return its stdout."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_process(proc, timeout=3)  # type: ignore[arg-type]
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return out.decode(errors="replace")


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "loadavg": os.getloadavg()}
