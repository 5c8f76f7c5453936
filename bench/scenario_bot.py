"""Official-account bot benchmark: signed WeChat pushes at /wechat/official.

Runnable alone (``python bench/scenario_bot.py``): starts, all on 127.0.0.1 and all
throw-away, a bare aiohttp baseline, Redis, a fake WeChat (its own process, so it can be
told to stall) and ``python -m server`` on SQLite; generates signed text-message pushes
(plain mode, and safe mode encrypted with the demo EncodingAESKey) with unique MsgIds,
questions from the NLU evaluation set and 500 followers; drives them with wrk from a
separate process; prints msgs/s, p50/p99 and the ratio to the bare baseline, then the
p99 at a moderate load with the fake WeChat answering normally and stalling 6 s.

The bench harness (bench/scenario.py, when present) picks up ``SCENARIOS`` below.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.procs import LOOPBACK, Children, free_port, wait_http, wait_idle  # noqa: E402
from fakes.wechat.simulator import WeChatSimulator, event_xml, text_xml  # noqa: E402
from server.settings import Settings  # noqa: E402

PATH = "/wechat/official"
FOLLOWERS = 500
EVAL = ROOT / "tests" / "bot" / "eval_questions.tsv"


# ---- request generation --------------------------------------------------------------


def questions() -> list[str]:
    rows = []
    for line in EVAL.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t")[0])
    return rows


def simulator(settings: Settings | None = None) -> WeChatSimulator:
    s = settings or Settings.load(env={})
    return WeChatSimulator(
        token=s.wechat.oa_token,
        appid=s.wechat.oa_appid,
        encoding_aes_key=s.wechat.oa_encoding_aes_key,
    )


def write_pushes(path: Path, mode: str, count: int, *, subscribe_every: int = 0,
                 warm: bool = False) -> Path:
    """``count`` signed pushes, one per line: ``query<TAB>body``; unique MsgIds, followers
    ``oa-bench<i>``; every ``subscribe_every``-th one a subscribe event (stall case).
    ``warm``: first a binding-failure question from every follower (the bot learns each
    follower's unionid once, in the background) — the steady state is measured after."""
    sim = simulator()
    qs = questions()
    if warm:
        qs = ["我给我妈绑定亲情账户一直失败怎么办"] * FOLLOWERS + qs
    rng = random.Random(7)
    run = time.time_ns() // 1000 % 10**11  # MsgIds unique across files and runs
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            follower = i if warm and i < FOLLOWERS else rng.randrange(FOLLOWERS)
            openid = f"oa-bench{follower}"
            if subscribe_every and i % subscribe_every == 0:
                xml = event_xml("subscribe", openid=f"oa-new{run}x{i}")
            else:
                xml = text_xml(qs[i % len(qs)], openid=openid, msg_id=run * 10**6 + i)
            push = sim.push(xml, mode)  # type: ignore[arg-type]
            query = urllib.parse.urlencode(push.query)
            out.write(f"{query}\t{push.body.decode()}\n")
    return path


def wrk_lua(pushes: Path, path: str = PATH) -> str:
    """wrk script: pre-format every request in init(), then cycle through them."""
    return f"""
local reqs = {{}}
init = function(args)
  for line in io.lines({json.dumps(str(pushes))}) do
    local tab = line:find("\\t", 1, true)
    reqs[#reqs + 1] = wrk.format("POST", "{path}?" .. line:sub(1, tab - 1),
      {{["Content-Type"] = "text/xml"}}, line:sub(tab + 1))
  end
end
local n = 0
request = function()
  n = n + 1
  return reqs[((n - 1) % #reqs) + 1]
end
"""


# ---- processes -----------------------------------------------------------------------


@contextmanager
def stack(workdir: Path) -> Iterator[dict[str, str]]:
    """Bare app, Redis, fake WeChat, the server: their base URLs."""
    procs = Children(workdir, cwd=ROOT)
    try:
        urls: dict[str, str] = {}
        port = free_port()
        p = procs.start("bare", [sys.executable, __file__, "bare", "--port", str(port)])
        urls["bare"] = f"http://{LOOPBACK}:{port}"
        urls["bare_pid"] = str(p.pid)
        wait_http(urls["bare"] + "/", p)

        port = free_port()
        argv = [sys.executable, __file__, "fake-wechat", "--port", str(port)]
        p = procs.start("fake-wechat", argv)
        urls["wechat"] = f"http://{LOOPBACK}:{port}"
        wait_http(urls["wechat"] + "/_fake/stats", p)

        # 500 followers sending thousands of messages a second would all be rate limited
        # (20 a minute each): the bench measures answering, so the limit is lifted.
        config = workdir / "bench.toml"
        # Plain pushes are measured too (allowed explicitly), and the warm-up's followers
        # are all looked up (the global follower budgets are lifted).
        config.write_text(
            "[bot]\nrate_limit_per_minute = 1000000000\nallow_plain_mode = true\n"
            + "".join(f"{k} = 1000000000\n" for k in (
                "user_info_per_minute", "user_info_per_hour",
                "new_followers_per_minute", "new_followers_per_hour"))
        )
        env = {**os.environ, "DATA_DIR": str(workdir / "data"), "WECHAT_API_BASE": urls["wechat"],
               "DEMO_DATA": "false", "RUN_WORKER": "false", "APP_ENV": "local",
               "CONFIG_FILE": str(config)}
        if shutil.which("redis-server"):
            rport = free_port()
            procs.start("redis", ["redis-server", "--port", str(rport), "--bind", LOOPBACK,
                                  "--save", "", "--appendonly", "no"])
            env["REDIS_URL"] = f"redis://{LOOPBACK}:{rport}/0"
            time.sleep(0.5)
        port = free_port()
        p = procs.start("server", [sys.executable, "-m", "server", "--port", str(port)], env=env)
        urls["server"] = f"http://{LOOPBACK}:{port}"
        urls["server_pid"] = str(p.pid)
        wait_http(urls["server"] + "/healthz", p)
        yield urls
    finally:
        procs.close()


def fake_config(base: str, **knobs: Any) -> None:
    body = json.dumps(knobs).encode()
    req = urllib.request.Request(base + "/_fake/config", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


# ---- load ----------------------------------------------------------------------------


_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to compare costs per request on
    a machine whose other load makes raw throughput noisy."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua: str, *, duration: float, connections: int, workdir: Path,
        pid: int | None = None) -> dict[str, float]:
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("loopback only")
    cpu_before = cpu_seconds(pid) if pid else 0.0
    script = workdir / f"load-{time.monotonic_ns()}.lua"
    script.write_text(lua + _DONE)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
         "-s", str(script), url],
        capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            d = json.loads(line[len("BENCH_JSON "):])
            secs = d["duration_us"] / 1e6
            result = {
                "rps": d["requests"] / secs,
                "p50_ms": d["p50_us"] / 1000,
                "p99_ms": d["p99_us"] / 1000,
                "requests": d["requests"],
                "errors": d["errors"],
            }
            if pid and d["requests"]:
                result["cpu_us"] = (cpu_seconds(pid) - cpu_before) / d["requests"] * 1e6
            return result
    raise RuntimeError(f"wrk printed no result: {out[-1000:]}")


def check_replies(server: str, pushes: Path, mode: str) -> None:
    """Before timing: the pushes are accepted and answered with a real reply."""
    with open(pushes, encoding="utf-8") as f:
        query, body = f.readline().rstrip("\n").split("\t", 1)
    req = urllib.request.Request(f"{server}{PATH}?{query}", data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    marker = "<Encrypt>" if mode == "safe" else "<Content>"
    if resp.status != 200 or marker not in text:
        raise RuntimeError(f"{mode} push not answered: {resp.status} {text[:200]}")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run(duration: float, connections: int, moderate: int) -> dict[str, Any]:
    """Bare baseline around each bot run; then the moderate-load p99, WeChat normal and
    stalling 6 s. ``BENCH_MODES`` (default ``plain,safe``), ``BENCH_KEEP=1`` keeps logs."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="qq-bench-bot-"))
    modes = os.environ.get("BENCH_MODES", "plain,safe").split(",")
    results: dict[str, Any] = {}
    try:
        with stack(workdir) as urls:
            bare_pid, server_pid = int(urls["bare_pid"]), int(urls["server_pid"])

            def load(url: str, lua: str, *, seconds: float = duration, pid: int | None = None,
                     conns: int = connections) -> dict[str, float]:
                return wrk(url, lua, duration=seconds, connections=conns, workdir=workdir, pid=pid)

            # Enough unique messages for the run at well above the expected rate.
            count = int((duration + 1) * 12_000)
            bot_url, bare_url = urls["server"] + PATH, urls["bare"] + "/"
            load(bare_url, "", seconds=1)
            bare = [load(bare_url, "", pid=bare_pid)]
            warm = write_pushes(workdir / "warm.tsv", "plain", FOLLOWERS + 2000, warm=True)
            load(bot_url, wrk_lua(warm), seconds=2)
            # the background look-ups of 500 new followers (user/info, SQLite writes) take
            # several seconds: measure once they are over (the steady state), not during
            time.sleep(1)
            wait_idle(threshold=0.85, timeout=30)
            for mode in modes:
                warmup = write_pushes(workdir / f"{mode}-warm.tsv", mode, count // 4)
                check_replies(urls["server"], warmup, mode)
                load(bot_url, wrk_lua(warmup), seconds=1)
                pushes = write_pushes(workdir / f"{mode}.tsv", mode, count)
                results[mode] = load(bot_url, wrk_lua(pushes), pid=server_pid)
                bare.append(load(bare_url, "", pid=bare_pid))
                results[f"wechatpy_{mode}"] = load(
                    urls["bare"] + "/wechat", wrk_lua(pushes, "/wechat"), pid=bare_pid
                )
            # For reference: the same server's /healthz (middlewares, no bot) in this run.
            results["healthz"] = load(urls["server"] + "/healthz", "", pid=server_pid)
            bare_rps = _median([b["rps"] for b in bare])
            bare_cpu = _median([b["cpu_us"] for b in bare])
            results["bare"] = {"rps": bare_rps, "cpu_us": bare_cpu}
            for mode in modes:
                for name in (mode, f"wechatpy_{mode}"):
                    results[name]["ratio"] = results[name]["rps"] / bare_rps
                    results[name]["cpu_ratio"] = bare_cpu / results[name]["cpu_us"]

            # p99 at a moderate load: WeChat normal vs stalling 6 s (a subscribe every 20
            # pushes makes the bot look the new follower up in the background).
            for label, stall in (("moderate", 0), ("moderate_stall6s", 6)):
                fake_config(urls["wechat"], stall_seconds=stall)
                pushes = write_pushes(workdir / f"{label}.tsv", "plain", int((duration + 1) * 6000),
                                      subscribe_every=20)
                results[label] = load(bot_url, wrk_lua(pushes), conns=moderate)
            fake_config(urls["wechat"], stall_seconds=0)
    finally:
        if os.environ.get("BENCH_KEEP"):
            print("kept", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def report(results: dict[str, Any]) -> str:
    bare = results["bare"]["rps"]
    bare_cpu = results["bare"]["cpu_us"]
    hz = results["healthz"]
    lines = [
        f"bare aiohttp: {bare:,.0f} req/s, {bare_cpu:.0f} µs CPU/request",
        f"the server's /healthz: {hz['rps']:,.0f} req/s = {hz['rps'] / bare:.1%} of bare, "
        f"{hz['cpu_us']:.0f} µs CPU/request = {bare_cpu / hz['cpu_us']:.1%} of bare by CPU",
    ]
    for mode, target in (("plain", 0.15), ("safe", 0.12)):
        if mode not in results:
            continue
        for name, label in ((f"wechatpy_{mode}", f"bare wechatpy {mode}"), (mode, f"bot {mode}")):
            r = results[name]
            goal = f" (target ≥ {target:.0%})" if name == mode else ""
            lines.append(
                f"{label:19}: {r['rps']:,.0f} msgs/s = {r['ratio']:.1%} of bare{goal}; "
                f"{r['cpu_us']:.0f} µs CPU/msg = {r['cpu_ratio']:.1%} of bare by CPU; "
                f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']}"
            )
    for label in ("moderate", "moderate_stall6s"):
        r = results[label]
        lines.append(
            f"{label:17}: {r['rps']:,.0f} msgs/s, p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms "
            f"(target ≤ 50 ms), errors {r['errors']}"
        )
    return "\n".join(lines)


# ---- children ------------------------------------------------------------------------


def serve_bare(port: int) -> None:
    """The baselines: a small JSON answer, and a bare wechatpy parse-and-reply handler."""
    from aiohttp import web
    from wechatpy import create_reply, parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.utils import check_signature

    from server.__main__ import new_loop

    settings = Settings.load(env={})
    token = settings.wechat.oa_token
    crypto = WeChatCrypto(token, settings.wechat.oa_encoding_aes_key, settings.wechat.oa_appid)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "id": 1, "realname_verified": False})

    async def wechatpy_echo(request: web.Request) -> web.Response:
        q = request.query
        check_signature(token, q["signature"], q["timestamp"], q["nonce"])
        body = await request.text()
        if q.get("encrypt_type") == "aes":
            body = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        reply = create_reply("收到:" + parse_message(body).content, parse_message(body), render=True)
        if q.get("encrypt_type") == "aes":
            reply = crypto.encrypt_message(reply, q["nonce"], q["timestamp"])
        return web.Response(text=reply, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/wechat", wechatpy_echo)
    web.run_app(app, host=LOOPBACK, port=port, print=None, loop=new_loop(), access_log=None)


def serve_fake_wechat(port: int) -> None:
    import asyncio

    from fakes.wechat import FakeWeChatState, start_fake_wechat
    from server.__main__ import new_loop

    async def main() -> None:
        runner, _, _ = await start_fake_wechat(LOOPBACK, port, FakeWeChatState())
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    loop = new_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
    try:
        loop.run_until_complete(main())
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("bare")
    b.add_argument("--port", type=int, required=True)
    f = sub.add_parser("fake-wechat")
    f.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--moderate", type=int, default=4, help="connections of the moderate-load runs")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args(argv)
    if args.command == "bare":
        serve_bare(args.port)
        return 0
    if args.command == "fake-wechat":
        serve_fake_wechat(args.port)
        return 0
    results = run(args.duration, args.connections, args.moderate)
    print(report(results))
    if args.json:
        print(json.dumps(results))
    return 0


# ---- the harness's view (bench/scenario.py on the bench branch) ----------------------

try:
    from bench.load import Load, Wrk
    from bench.scenario import Scenario
    from bench.services import Target
except ImportError:  # running alone, or the harness is not there
    SCENARIOS: list[Any] = []
else:

    def _bot_load(mode: str) -> Any:
        def prepare(target: Target, round_no: int) -> Load:
            workdir = Path(tempfile.mkdtemp(prefix="qq-bench-bot-"))
            if round_no == 0:
                # as the standalone run: every follower asks once first, so their unionids
                # are looked up (in the background) before anything is measured
                warm = write_pushes(workdir / "warm.tsv", mode, FOLLOWERS, warm=True)
                _post_all(target.base_url, warm)
            pushes = write_pushes(workdir / f"{mode}.tsv", mode, 120_000)
            return Wrk(path=PATH, method="POST", lua=wrk_lua(pushes))

        return prepare

    def _post_all(server: str, pushes: Path) -> None:
        with open(pushes, encoding="utf-8") as f:
            for line in f:
                query, body = line.rstrip("\n").split("\t", 1)
                req = urllib.request.Request(f"{server}{PATH}?{query}", data=body.encode(),
                                             method="POST")
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()

    SCENARIOS = [
        Scenario("bot_plain", "POST /wechat/official, text, plain", "sqlite", _bot_load("plain")),
        Scenario("bot_safe", "POST /wechat/official, text, AES", "sqlite", _bot_load("safe")),
    ]


if __name__ == "__main__":
    sys.exit(main())
