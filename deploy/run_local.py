"""Run the production deployment on this machine, on loopback: the command lines of
deploy/systemd/*.service (read from the unit files, so they cannot drift apart) and,
optionally, nginx with deploy/nginx/qinqing.conf (ports and paths substituted).

    DATABASE_URL=postgres://… REDIS_URL=redis://… \\
        python deploy/run_local.py --web 8081,8082 --workers 9108,9109 [--nginx 8443]

The environment stands in for the units' EnvironmentFile (/etc/qinqing/qinqing.env).
What systemd does is done here as plainly as possible: ``qinqing-migrate`` runs first and
must succeed, then one ``qinqing-web@PORT`` per web port and one ``qinqing-worker@PORT``
per worker port, each with its unit's ``Environment=`` lines; Ctrl-C (or SIGTERM) stops
them with SIGTERM, as ``systemctl stop`` does. tests/deploy/ drives the same functions.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
NGINX_CONF = ROOT / "deploy" / "nginx" / "qinqing.conf"
INSTALL_DIR = "/opt/qinqing"  # where the units expect the checkout (WorkingDirectory)

__all__ = ["Fleet", "UnitCommand", "nginx_main_conf", "render_nginx", "unit_command"]


@dataclass(frozen=True)
class UnitCommand:
    argv: list[str]
    env: dict[str, str]  # the unit's Environment= assignments (EnvironmentFile: the caller's)
    cwd: Path


def unit_command(unit: str, instance: str | int | None = None) -> UnitCommand:
    """``ExecStart`` and ``Environment=`` of ``deploy/systemd/<unit>.service`` with ``%i``
    set to ``instance``, the install path mapped to this checkout and its interpreter."""
    text = (UNITS / f"{unit}.service").read_text(encoding="utf-8")
    inst = "" if instance is None else str(instance)
    exec_start = ""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            exec_start = line.removeprefix("ExecStart=")
        elif line.startswith("Environment="):
            for item in shlex.split(line.removeprefix("Environment=")):
                key, _, value = item.partition("=")
                env[key] = value.replace("%i", inst)
    if not exec_start:
        raise ValueError(f"{unit}.service has no ExecStart")
    argv = shlex.split(exec_start.replace("%i", inst))
    if argv[0] == f"{INSTALL_DIR}/.venv/bin/python":
        argv[0] = sys.executable
    return UnitCommand(argv, env, ROOT)


@dataclass
class Fleet:
    """The processes of one deployment; each logs to ``logdir/<unit>@<instance>.log``."""

    env: dict[str, str]  # what EnvironmentFile holds: DATABASE_URL, REDIS_URL, secrets …
    logdir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _environ(self, cmd: UnitCommand) -> dict[str, str]:
        # a clean slate like systemd's: PATH and the like, then the file, then the unit
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
        return {**keep, **self.env, **cmd.env}

    def migrate(self, timeout: float = 120) -> None:
        """``qinqing-migrate`` (oneshot): must succeed before anything starts."""
        cmd = unit_command("qinqing-migrate")
        log = self.logdir / "qinqing-migrate.log"
        with open(log, "wb") as out:
            done = subprocess.run(
                cmd.argv, env=self._environ(cmd), cwd=cmd.cwd, stdout=out,
                stderr=subprocess.STDOUT, timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"qinqing-migrate failed:\n{log.read_text(errors='replace')[-3000:]}")

    def cli(self, *args: str, timeout: float = 120) -> str:
        """``python -m server ARGS`` as the bureau runs it on this deployment (the units'
        environment, the schema left alone); its stdout, or RuntimeError with stderr."""
        cmd = unit_command("qinqing-migrate")
        env = {**self._environ(cmd), "DATABASE_SCHEMA": "none"}
        done = subprocess.run(
            [sys.executable, "-m", "server", *args], env=env, cwd=cmd.cwd, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"python -m server {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self, unit: str, instance: int, extra_env: dict[str, str] | None = None) -> str:
        """Start ``unit@instance``; its name (the key in ``procs``)."""
        cmd = unit_command(unit, instance)
        name = f"{unit.rstrip('@')}@{instance}"
        env = {**self._environ(cmd), **(extra_env or {})}
        with open(self.logdir / f"{name}.log", "wb") as out:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                cmd.argv, env=env, cwd=cmd.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        return name

    def web(self, port: int, extra_env: dict[str, str] | None = None) -> str:
        return self.start("qinqing-web@", port, extra_env)

    def worker(self, metrics_port: int, extra_env: dict[str, str] | None = None) -> str:
        return self.start("qinqing-worker@", metrics_port, extra_env)

    def wait_ready(self, ports: list[int], timeout: float = 90) -> None:
        """Every port answers ``/readyz`` with 200 (servers and workers both serve it)."""
        deadline = time.monotonic() + timeout
        for port in ports:
            while True:
                self._check_alive()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"127.0.0.1:{port} not ready after {timeout:.0f} s\n{self.logs()}")
                time.sleep(0.1)

    def _check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"exited early: {dead}\n{self.logs()}")

    def logs(self, tail: int = 2000) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-tail:]}" for f in sorted(self.logdir.glob("*.log"))
        )

    def stop(self, name: str, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` (systemd's TimeoutStopSec); the exit code."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return int(proc.returncode)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


# ---- nginx ----------------------------------------------------------------------------


def render_nginx(
    *, listen: int, redirect_listen: int, upstreams: list[int], cert: Path, key: Path, logdir: Path,
    conf: str | None = None,
) -> str:
    """deploy/nginx/qinqing.conf for a loopback run: the listen ports, the upstream
    servers (one per web process), the TLS files and the log paths replaced; every limit
    and proxy setting kept as shipped."""
    text = NGINX_CONF.read_text(encoding="utf-8") if conf is None else conf
    lines = [f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;" for p in upstreams]
    text, n = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ [^\n]*\n(?:    server 127\.0\.0\.1:\d+ [^\n]*\n)*",
                      "\n".join(lines) + "\n", text)  # fmt: skip
    if n != 1:
        raise ValueError("qinqing.conf: expected one block of upstream server lines")
    subs = [
        (r"(?m)^    listen 80;", f"    listen 127.0.0.1:{redirect_listen};"),
        (r"(?m)^    listen 443 ssl", f"    listen 127.0.0.1:{listen} ssl"),
        (r"ssl_certificate /\S+;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key /\S+;", f"ssl_certificate_key {key};"),
        (r"access_log /\S+;", f"access_log {logdir / 'access.log'};"),
        (r"error_log /\S+ ", f"error_log {logdir / 'error.log'} "),
    ]
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text)
        if n != 1:
            raise ValueError(f"qinqing.conf: {pattern!r} matched {n} times")
    return text


def nginx_main_conf(site: Path, workdir: Path) -> str:
    """A minimal nginx.conf around the site file, every path inside ``workdir``."""
    temps = " ".join(f"{kind}_temp_path {workdir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # started as root (CI containers), nginx's workers would drop to "nobody", who cannot
    # enter a private temporary directory: keep them as the user who runs this
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n  {temps}\n  access_log off;\n  include {site};\n}}\n"
    )


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (the cryptography package, a dependency)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def nginx_files(workdir: Path, *, listen: int, redirect_listen: int, upstreams: list[int]) -> Path:
    """Write the site, the main conf and a certificate into ``workdir``; the main conf."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / kind).mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir)
    site = workdir / "qinqing.conf"
    site.write_text(
        render_nginx(listen=listen, redirect_listen=redirect_listen, upstreams=upstreams,
                     cert=cert, key=key, logdir=workdir),
        encoding="utf-8",
    )  # fmt: skip
    main = workdir / "nginx.conf"
    main.write_text(nginx_main_conf(site, workdir), encoding="utf-8")
    return main


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


# ---- command line ---------------------------------------------------------------------


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--web", default="8081,8082", help="loopback ports of the server processes")
    p.add_argument("--workers", default="9108,9109", help="metrics ports of the push workers")
    p.add_argument("--nginx", type=int, default=0, help="also run nginx with the shipped config, TLS on this port")
    p.add_argument("--logdir", default="data/run-local", help="one log file per process")
    args = p.parse_args(argv)
    missing = [v for v in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(v)]
    if missing:
        print(f"set {' and '.join(missing)} (PostgreSQL and Redis, as in /etc/qinqing/qinqing.env)", file=sys.stderr)
        return 2
    logdir = Path(args.logdir).resolve()
    logdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    fleet = Fleet(env, logdir)
    web, workers = _ports(args.web), _ports(args.workers)
    nginx: subprocess.Popen[bytes] | None = None
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        fleet.migrate()
        for port in web:
            fleet.web(port)
        for port in workers:
            fleet.worker(port)
        fleet.wait_ready(web + workers)
        if args.nginx:
            binary = nginx_binary()
            if binary is None:
                print("nginx is not installed (apt-get install nginx-light)", file=sys.stderr)
                return 2
            conf = nginx_files(logdir / "nginx", listen=args.nginx, redirect_listen=args.nginx + 1, upstreams=web)
            nginx = subprocess.Popen([binary, "-c", str(conf), "-e", str(logdir / "nginx" / "error.log")])
        print(f"servers on {', '.join(f'127.0.0.1:{p}' for p in web)}; workers' metrics on "
              f"{', '.join(f'127.0.0.1:{p}' for p in workers)}"
              + (f"; nginx on https://127.0.0.1:{args.nginx}" if args.nginx else "")
              + f"; logs in {logdir}. Ctrl-C stops.", flush=True)  # fmt: skip
        while not stop:
            fleet._check_alive()
            time.sleep(0.5)
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        fleet.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
