"""The contract fuzzed (issue #15): Schemathesis against the served ``/api/openapi.json``.

Our server runs as a child process (demo data, embedded SQLite and Redis, the in-process
fake WeChat). Every operation is fed Hypothesis-generated requests — valid ones and
invalid ones — as a logged-in user (a JWT from the demo login), the demo reviewer, or
the demo hospital signing every request (HMAC over the exact bytes sent). The rule:

* no 5xx, on any endpoint, for any input;
* every response matches what the document declares: a declared status, its content
  type, and its schema (errors: the ``Error`` envelope).

Each operation goes through Schemathesis' phases as its CLI runs them: explicit
examples, coverage (boundary values, missing and malformed parts), fuzzing.
Bounded and reproducible: ``derandomize=True`` (the same examples on every run, no
example database) and ``MAX_EXAMPLES`` fuzzed examples per operation, sized so the whole
file runs in about a minute on two cores (well under three).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

schemathesis = pytest.importorskip("schemathesis")  # in the [test] extras

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.feedback import FeedbackSources  # noqa: E402
from schemathesis.pytest._test_builder import build_operation_test  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from institution_api.signing import sign  # noqa: E402
from tests.reliability.servers import (  # noqa: E402
    private_postgres,
    private_redis,
    server_alive,
    server_process,
)

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
INSTITUTION = ("H00001", "demo-institution-secret")  # config/default.toml demo institution
REVIEWER_TOKEN = "demo-reviewer-token"  # config/default.toml [review] (demo only)
# Requests that end the session they run in: each gets a login of its own
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/me")}
# The fuzzer sends thousands of requests from one address and one user: the abuse limits
# (429s, which are declared and fine) would otherwise turn most of the run into 429s
OVERLAY = """
[auth]
logins_per_ip_per_minute = 1000000
[family]
applications_per_window = 1000000
submits_per_window = 1000000
vouchers_per_window = 1000000
identity_checks_per_user = 1000000
identity_checks_per_ip = 1000000
[face]
sessions_per_window = 1000000
"""

_codes = itertools.count()


class Api:
    """The running server and the credentials the fuzzer uses."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.token = self.login()

    def login(self) -> str:
        r = self.http.post(
            f"{self.base}/api/v1/auth/login", json={"code": f"demo-fuzz{next(_codes)}-x"}, timeout=10
        )
        assert r.status_code == 200, r.text
        token = str(r.json()["access_token"])
        notice = self.http.get(f"{self.base}/api/v1/privacy/notice", timeout=10).json()
        consent = {"version": notice["version"], "sha256": notice["sha256"],
                   "purposes": [p["id"] for p in notice["purposes"]]}  # fmt: skip
        r = self.http.post(f"{self.base}/api/v1/privacy/consents", json=consent,
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
        assert r.status_code == 201, r.text
        return token


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class InstitutionSignature(requests.auth.AuthBase):
    """API.md institution signing over the exact body requests is about to send."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(12)
        code, secret = INSTITUTION
        r.headers.update({"X-Institution-Code": code, "X-Timestamp": ts, "X-Nonce": nonce,
                          "X-Signature": sign(secret, ts, nonce, body)})  # fmt: skip
        return r


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    workdir = tmp_path_factory.mktemp("fuzz")
    overlay = workdir / "fuzz.toml"
    overlay.write_text(OVERLAY, encoding="utf-8")
    env = {"DEMO_DATA": "true", "CONFIG_FILE": str(overlay)}
    with contextlib.ExitStack() as stack:
        if os.environ.get("TEST_DATABASE_URL"):
            # the suite's PostgreSQL pass: fuzz a server on PostgreSQL + Redis of its own
            # (PostgreSQL refuses what SQLite takes: NUL characters, integer overflow …)
            pg = stack.enter_context(private_postgres())
            redis = stack.enter_context(private_redis())
            env |= {"DATABASE_URL": pg.url, "REDIS_URL": redis.url}
        base = stack.enter_context(server_process(env, workdir))
        deadline = time.monotonic() + 60
        while True:
            server_alive(base)
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server did not become ready:\n" + _log(workdir))
            time.sleep(0.1)
        yield Api(base)


def _log(workdir: Path) -> str:
    return (workdir / "server.log").read_text(encoding="utf-8", errors="replace")[-4000:]


@pytest.fixture(scope="module")
def schema(api: Api) -> Any:
    doc = api.http.get(f"{api.base}/api/openapi.json", timeout=10).json()
    loaded = schemathesis.openapi.from_dict(doc)
    loaded.config.update(base_url=api.base)  # type: ignore[attr-defined]
    return loaded


def _operations() -> list[tuple[str, str]]:
    """The operations the document declares, as collected from the app itself (the
    served document is compared with this list in ``test_every_operation_is_fuzzed``)."""
    from server.app import create_app
    from server.openapi import build_openapi
    from server.settings import Settings

    app = create_app(Settings.load("test.toml", env={}, overrides={"server.data_dir": "/nonexistent"}))
    doc = build_openapi(app, title="-", version="-")
    return sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops)


OPERATIONS = _operations()


def test_every_operation_is_fuzzed(schema: Any) -> None:
    served = sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations())
    assert served == OPERATIONS


def _auth_for(api: Api, method: str, path: str, security: list[dict[str, Any]]) -> Any:
    names = {name for item in security for name in item}
    if "institution" in names:
        return InstitutionSignature()
    if "reviewer" in names:
        return Bearer(REVIEWER_TOKEN)
    if (method, path) in SESSION_ENDING:
        return Bearer(api.login())
    return Bearer(api.token)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(api: Api, schema: Any, method: str, path: str) -> None:
    operation = schema[path][method]
    security = operation.definition.raw.get("security", [])

    def run(case: Any) -> None:
        auth = _auth_for(api, method, path, security)
        try:
            case.call_and_validate(session=api.http, auth=auth, checks=CHECKS, timeout=10)
        except requests.ConnectionError as exc:  # the server died: show why
            raise AssertionError(f"server gone: {exc}\n{json.dumps(case.path_parameters)}") from exc

    # Schemathesis' own phases, as its CLI runs them: explicit examples, coverage
    # (boundary values, missing and malformed parts), then fuzzing of valid and invalid
    # requests. (Its pytest ``from_fixture`` wrapper fails on pytest 9.2: no ``_nodeid``.)
    test = build_operation_test(
        config=schema.config,
        operation=operation,
        test_func=run,
        given_kwargs={},
        feedback=FeedbackSources(),
        explicit_settings=hsettings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    test()
    server_alive(api.base)  # still our server, still up
