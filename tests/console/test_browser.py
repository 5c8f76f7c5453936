"""The console in a real browser: Playwright for Python driving Debian's chromium
(`apt-get install chromium fonts-noto-cjk`; never `playwright install`).

A reviewer logs in with the keyboard, sees the queue, opens an application, unmasks the
member (audited), approves it, rejects another; a counter clerk serves a person without a
smartphone (look-up, 代激活, binds her father with the documents seen and her signature,
sees the result and its audit row, also on a small screen); an
admin sees the analytics charts drawn from real data (pixels on every canvas), the
audit rows and the push queue. Screenshots of each page go to the test's output folder
(and to docs/console/ when UPDATE_CONSOLE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import (
    Application,
    Binding,
    InsuredPerson,
    Notice,
    StaffAuditEntry,
    User,
    VoucherActivation,
)
from server.settings import ROOT
from tests.console.conftest import add_staff, pending
from tests.factories import add_person, bearer, verified_user
from tests.family.helpers import MOTHER, WIFE, png, prepare, submit

CHROMIUM = "/usr/bin/chromium"
DOCS = ROOT / "docs" / "console"

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk (.ci/run installs them)",
)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            await b.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    async def take(self, page: Any, name: str, *, full_page: bool = True) -> None:
        path = self.folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)

    def publish(self) -> None:
        if os.environ.get("UPDATE_CONSOLE_SCREENSHOTS") == "1":
            DOCS.mkdir(parents=True, exist_ok=True)
            for path in self.taken:
                shutil.copy(path, DOCS / path.name)


async def _login(page: Any, base: str, name: str, password: str) -> None:
    """With the keyboard only: the name field has focus, Tab to the password, Enter."""
    await page.goto(f"{base}/review/login")
    # the name field takes the focus itself (autofocus); type only once it has it
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'name'")
    await page.keyboard.type(name)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert "/review/login" not in page.url, await page.content()


async def _canvas_pixels(page: Any, canvas_id: str) -> int:
    """How many pixels of the canvas are drawn (not transparent)."""
    return int(await page.evaluate(
        """(id) => {
            const c = document.getElementById(id);
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) n++; }
            return n;
        }""",
        canvas_id,
    ))


async def test_console_end_to_end_in_chromium(
    console: TestClient, capp: web.Application, browser: Any, tmp_path: Path
) -> None:
    base = str(console.make_url("")).rstrip("/")
    shots = Shots(tmp_path / "screenshots")
    ids = await pending(console, capp)
    # real failures for the charts: a missing 户口本 page, a failed face check
    wife = bearer(await verified_user(console, "wife", WIFE))
    await submit(console, wife, await prepare(console, wife, MOTHER, "parent", kinds=()))
    await Notice.create(kind="family_settlement", dedupe_key="b1", title="家人就医结算通知", state="delivered")
    await Notice.create(kind="family_settlement", dedupe_key="b2", title="家人就医结算通知", state="failed",
                        errcode=43101, reason="用户拒收", attempts=3)
    ann = await add_staff(capp, "ann", "reviewer", "420000")
    boss = await add_staff(capp, "boss", "admin", "000000")
    clerk = await add_staff(capp, "clerk", "counter", "420100")

    # -- the reviewer -----------------------------------------------------------------
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await ctx.new_page()
    await page.goto(f"{base}/review/login")
    await shots.take(page, "01-login")
    await _login(page, base, "ann", ann)
    assert page.url.endswith("/review/queue")
    rows = page.locator("tbody tr")
    assert await rows.count() == 2  # the Sichuan application is not ann's
    assert await page.get_by_text("黄*明").count() == 1
    await shots.take(page, "02-queue")

    async with page.expect_navigation():
        await page.get_by_role("link", name="查看 黄*明 的申请").click()
    assert await page.get_by_text("港澳居民来往内地通行证").count() >= 1
    assert await page.get_by_text("黄家明").count() == 0
    img = page.locator(".materials img")
    assert await img.evaluate("i => i.complete && i.naturalWidth > 0")
    await shots.take(page, "03-detail-masked")
    async with page.expect_navigation():
        await page.locator("form:has(input[name=whom][value=member]) button").click()
    assert await page.get_by_text("黄家明").count() >= 1
    assert await page.get_by_text("H12345678").count() >= 1
    await shots.take(page, "04-detail-unmasked")
    async with page.expect_navigation():
        await page.get_by_role("button", name="领取处理(其他审核员将看到您在处理)").click()
    assert await page.get_by_text("您已领取该申请").count() == 1
    async with page.expect_navigation():
        await page.get_by_role("button", name="通过", exact=True).click()
    assert await page.get_by_text("已通过该申请").count() == 1
    assert (await Application.get(id=ids["hk"])).state == "active"

    async with page.expect_navigation():
        await page.get_by_role("link", name="查看 张*明 的申请").click()
    assert await page.get_by_text("绑定人不是户籍登记的监护人").count() == 1
    await page.select_option("#reason_code", "NOT_GUARDIAN")
    await page.fill("#note", "请上传户口本中显示监护关系的页面")
    await shots.take(page, "05-reject")
    async with page.expect_navigation():
        await page.get_by_role("button", name="驳回", exact=True).click()
    assert await page.get_by_text("已驳回该申请").count() == 1
    minor = await Application.get(id=ids["minor"])
    assert minor.state == "failed" and "监护人" in (minor.failure_message or "")
    await shots.take(page, "06-queue-after")

    # a counter's small screen: the queue and a detail still read
    small = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone = await small.new_page()
    await _login(phone, base, "boss", boss)
    await phone.goto(f"{base}/review/applications/{ids['far']}")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a small screen ({width}px)"
    await shots.take(phone, "07-small-screen-detail")
    await small.close()

    # -- the counter: a clerk binds a parent with no smartphone ----------------------
    await _counter_binds_a_parent(browser, base, capp, clerk, shots)

    # -- the admin ------------------------------------------------------------------
    actx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    admin = await actx.new_page()
    await _login(admin, base, "boss", boss)
    await admin.goto(f"{base}/review/admin/analytics")
    await admin.wait_for_selector("body[data-charts=ready]", timeout=15_000)
    status = await admin.locator("#chart-status").inner_text()
    assert "次绑定失败" in status and " 0 次" not in status
    for canvas in ("chart-by-day", "chart-by-region", "chart-share", "chart-decision",
                   "chart-push-state", "chart-push-errcode"):
        drawn = await _canvas_pixels(admin, canvas)
        assert drawn > 2_000, f"{canvas} looks blank ({drawn} pixels drawn)"
    await shots.take(admin, "09-analytics")

    await admin.goto(f"{base}/review/admin/audit")
    table = await admin.locator("#audit-table").inner_text()
    for label in ("查看完整身份信息", "审核通过", "审核驳回", "查看材料", "窗口查询参保人",
                  "窗口代激活电子凭证", "窗口代办绑定"):
        assert label in table, label
    await shots.take(admin, "10-audit")
    await admin.goto(f"{base}/review/admin/notices")
    assert await admin.get_by_text("43101 用户拒收或未订阅").count() == 1
    await shots.take(admin, "11-notices")
    await actx.close()
    await ctx.close()

    # the browser's work is in the audit log, person references only
    unmask = await StaffAuditEntry.get(action="unmask", staff_name="ann")
    assert unmask.person_ref and unmask.person_ref.startswith("person:")
    assert await StaffAuditEntry.filter(action__in=["approve", "reject"], staff_name="ann").count() == 2
    shots.publish()


async def _counter_binds_a_parent(
    browser: Any, base: str, capp: web.Application, clerk: str, shots: Shots
) -> None:
    """陈小兰 comes to the 医保大厅 without a smartphone to bind her father 陈德明, who has
    none either and came with her. Neither has an activated 医保电子凭证."""
    daughter = await add_person(capp, "陈小兰", birth=date(1975, 6, 2), seq="612")
    father = await add_person(capp, "陈德明", birth=date(1948, 9, 9), seq="915", insurance_type="resident")
    await InsuredPerson.filter(id__in=[daughter.id, father.id]).update(voucher_activated=False)

    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await ctx.new_page()
    await _login(page, base, "clerk", clerk)
    assert page.url.endswith("/review/counter")
    # the look-up with the keyboard: the ID field has the focus, Tab to the name, Enter
    await page.wait_for_function("document.activeElement && document.activeElement.id === 'c-id'")
    await page.keyboard.type(daughter.id_number)
    await page.keyboard.press("Tab")
    await page.keyboard.type(daughter.name)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.get_by_text("陈*兰").count() >= 1
    assert await page.get_by_text(daughter.id_number).count() == 0  # masked
    assert await page.locator("#own-voucher").inner_text() == "未激活"
    await shots.take(page, "08-counter")

    # 代激活 of her own voucher first (the counter's real-name check needs it, as the app's)
    async with page.expect_navigation():
        await page.get_by_role("button", name="为本人代激活医保电子凭证(已核验本人证件)").click()
    assert "代激活成功" in await page.locator("#counter-result").inner_text()
    assert await page.locator("#own-voucher").inner_text() == "已激活"

    # the binding form: father present (checked in person), 户口本 seen, her signature
    await page.fill("#b-name", father.name)
    await page.fill("#b-id", father.id_number)
    await page.select_option("#b-rel", "parent")
    await page.check("#v-in-person")
    await page.check("#seen-household_register")
    await page.set_input_files(
        "#b-signature", files=[{"name": "signature.png", "mimeType": "image/png", "buffer": png(120, 40)}]
    )
    await page.check("#b-consent")
    await shots.take(page, "12-counter-bind-form")
    async with page.expect_navigation():
        await page.get_by_role("button", name="提交绑定").click()
    result = await page.locator("#counter-result").inner_text()
    assert "绑定成功" in result and "已绑定" in result, result
    assert "已为 陈*明 代激活医保电子凭证" in result
    audit_row = await page.locator("#counter-audit").inner_text()
    assert "窗口代办绑定" in audit_row and "clerk" in audit_row and f"person:{daughter.id}" in audit_row
    assert "陈*明" in await page.locator("#members-table").inner_text()
    await shots.take(page, "13-counter-bound")
    await ctx.close()

    # the records behind the page
    binding = await Binding.get(member_id=father.id, state="active")
    account = await User.get(id=binding.binder_id)  # type: ignore[attr-defined]
    assert account.openid.startswith("counter:") and account.person_id == daughter.id  # type: ignore[attr-defined]
    assert (await InsuredPerson.get(id=father.id)).voucher_activated
    methods = await VoucherActivation.filter(person_id__in=[daughter.id, father.id]).values_list("method", "staff")
    assert sorted(methods) == [("counter", "clerk"), ("counter", "clerk")]
    entry = await StaffAuditEntry.get(action="counter_bind", staff_name="clerk")
    assert entry.person_ref == f"person:{daughter.id}" and entry.detail["outcome"] == "active"
    assert entry.detail["seen"] == ["household_register"] and entry.detail["signature"] == "image"

    # and on a counter's small screen
    small = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
    phone = await small.new_page()
    await _login(phone, base, "clerk", clerk)
    await phone.fill("#c-id", daughter.id_number)
    await phone.fill("#c-name", daughter.name)
    async with phone.expect_navigation():
        await phone.get_by_role("button", name="查找").click()
    assert await phone.get_by_text("陈*明").count() >= 1
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the counter page scrolls sideways on a small screen ({width}px)"
    await shots.take(phone, "14-counter-small-screen")
    await small.close()
