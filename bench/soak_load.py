"""The soak's load generator (its own process, so it never shares the server's loop).

    python -m bench.soak_load --url URL --plan PLAN.json --seconds S (--capacity C | --rate R)

A mix of the three clients, drawn at random with these weights (``MIX``):

* mini-program: ``GET /api/v1/me`` (50 users), ``GET /api/v1/family/members`` (the seeded
  binders), ``POST /api/v1/auth/login`` (a new demo code each);
* official-account bot: signed plain-mode text pushes, a new MsgId each, 500 followers;
* institutions: signed 2207 settlements with a 共济 split (each writes ledger entries and
  3–4 notices the push worker then delivers to the fake WeChat).

``--capacity C``: closed loop, C requests in flight (measures what the stack sustains);
``--rate R``: open loop, a request started every 1/R s (bounded to 256 in flight — a
request that cannot start is counted as an error, ``saturated``). At most 64 keep-alive
connections, like a reverse proxy's upstream pool: more requests in flight wait for one
(their wait is in their latency). Every ``--window``
seconds it prints one JSON line: wall time, requests, errors, p50 / p99 (ms) of the
window, per kind; the last line is the run's summary. Only talks to ``--url`` (loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import random
import secrets
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

MIX = {"me": 40, "members": 15, "bot": 25, "settle": 15, "login": 2}
MAX_IN_FLIGHT = 256
CLIENT_CONNECTIONS = 64  # keep-alive connections at most (a proxy's upstream pool); more in flight wait
QUESTIONS = ("医保卡丢了怎么办", "亲情账户怎么绑定父母", "家庭共济是什么", "异地就医怎么备案",
             "个人账户余额怎么查", "门诊报销比例是多少", "给孩子交医保", "绑定失败怎么办")


class Mix:
    """Builds one request of a kind: (method, path, headers, body)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        from fakes.wechat.simulator import WeChatSimulator, text_xml

        self.plan = plan
        self.sim = WeChatSimulator(**plan["oa"])
        self.text_xml = text_xml
        self.run = secrets.token_hex(3)
        self.n = itertools.count(1)
        self.msg_base = time.time_ns() // 1000 % 10**11 * 10**6
        self.rnd = random.Random()
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]

    def pick(self) -> str:
        return self.rnd.choices(self.kinds, self.weights)[0]

    def build(self, kind: str) -> tuple[str, str, dict[str, str], bytes | None]:
        n = next(self.n)
        p, rnd = self.plan, self.rnd
        if kind == "me":
            return "GET", "/api/v1/me", {"Authorization": "Bearer " + rnd.choice(p["tokens"])}, None
        if kind == "members":
            auth = {"Authorization": "Bearer " + rnd.choice(p["binder_tokens"])}
            return "GET", "/api/v1/family/members", auth, None
        if kind == "login":
            body = json.dumps({"code": f"demo-soakl{n % 200}-{self.run}x{n}"}).encode()
            return "POST", "/api/v1/auth/login", {"Content-Type": "application/json"}, body
        if kind == "bot":
            xml = self.text_xml(rnd.choice(QUESTIONS), openid=f"oa-bench{rnd.randrange(500)}",
                                msg_id=self.msg_base + n)
            push = self.sim.push(xml, "plain")
            path = "/wechat/official?" + urllib.parse.urlencode(push.query)
            return "POST", path, {"Content-Type": "text/xml"}, push.body
        s = p["settle"]
        part = rnd.randint(1_000, 9_999)
        body = json.dumps({
            "setl_id": f"soak-{self.run}-{n}", "med_type": "11", "psn_no": rnd.choice(s["psn_nos"]),
            "setl_time": "2026-11-20T10:30:00+08:00",
            "medfee_sumamt": f"{(part + 10_000) // 100}.{(part + 10_000) % 100:02d}",
            "hifp_pay": "100.00", "fund_pay_sumamt": "100.00",
            "psn_part_amt": f"{part // 100}.{part % 100:02d}",
        }).encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(12)
        sig = hmac.new(s["secret"].encode(), ts.encode() + b"\n" + nonce.encode() + b"\n" + body,
                       hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Institution-Code": s["code"],
                   "X-Timestamp": ts, "X-Nonce": nonce, "X-Signature": sig}
        return "POST", "/api/v1/institution/settlements", headers, body


class Window:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.by_kind: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def line(self, now: float) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else 0.0

        return {"t": round(now, 3), "n": len(lat), "errors": sum(self.errors.values()),
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "by_kind": dict(self.by_kind),
                "error_kinds": dict(self.errors)}


async def drive(url: str, plan: dict[str, Any], *, seconds: float, window: float,
                rate: float | None, capacity: int | None) -> dict[str, Any]:
    import aiohttp

    mix = Mix(plan)
    current = Window()
    total_ok = total_err = 0
    all_errors: Counter[str] = Counter()
    in_flight = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    end = started + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal in_flight, total_ok, total_err
        kind = mix.pick()
        method, path, headers, body = mix.build(kind)
        t0 = time.perf_counter()  # uvloop's loop.time() ticks in whole milliseconds
        label = ""
        try:
            async with session.request(method, url + path, headers=headers, data=body) as resp:
                await resp.read()
                if resp.status >= 300:
                    label = f"{kind}:{resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            label = f"{kind}:{type(exc).__name__}"
        finally:
            in_flight -= 1
        if label:
            current.errors[label] += 1
            all_errors[label] += 1
            total_err += 1
        else:
            current.latencies.append((time.perf_counter() - t0) * 1000)
            current.by_kind[kind] += 1
            total_ok += 1

    async def reporter() -> None:
        nonlocal current
        next_at = started + window
        while next_at <= end + 1e-6:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            done, current = current, Window()
            print(json.dumps(done.line(time.time())), flush=True)
            next_at += window

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        report = asyncio.create_task(reporter())
        tasks: set[asyncio.Task[None]] = set()
        if capacity:
            async def closed() -> None:
                nonlocal in_flight
                while loop.time() < end:
                    in_flight += 1
                    await one(session)

            await asyncio.gather(*(closed() for _ in range(capacity)))
        else:
            assert rate
            i = 0
            while True:
                at = started + i / rate
                if at >= end:
                    break
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                i += 1
                if in_flight >= MAX_IN_FLIGHT:
                    current.errors["saturated"] += 1
                    all_errors["saturated"] += 1
                    total_err += 1
                    continue
                in_flight += 1
                task = asyncio.create_task(one(session))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=35)
        await report
    elapsed = loop.time() - started
    return {"summary": True, "seconds": round(elapsed, 2), "ok": total_ok, "errors": total_err,
            "rps": round(total_ok / elapsed, 1), "error_kinds": dict(all_errors)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak_load", description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--window", type=float, default=5.0)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float)
    mode.add_argument("--capacity", type=int)
    args = p.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:"):
        print("loopback only", file=sys.stderr)
        return 2
    if not (1 <= args.seconds <= 3600):
        print("bounds: 1-3600 s", file=sys.stderr)
        return 2
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    summary = run(drive(args.url, plan, seconds=args.seconds, window=args.window,
                        rate=args.rate, capacity=args.capacity))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
