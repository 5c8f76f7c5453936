"""A faithful local fake of the WeChat server APIs, as a real aiohttp application.

Used by tests, benchmarks and the demo server (in-process on 127.0.0.1). It answers the
paths :mod:`server.gateways.wechat` calls with WeChat's JSON shapes, errcodes and quirks.
Every call is O(1) and nothing sleeps unless ``stall_seconds`` is set, so benchmarks can
run against it.

Rooms: ``protocol`` (paths, errcodes, JSON), ``state`` (what the fake remembers),
``api`` (the WeChat API handlers), ``face`` (人脸核身), ``receipts`` (delivery receipts
pushed to the official account's server), ``control`` (``/_fake/*``), ``app``
(build / start), ``simulator`` (WeChat's side of the official-account webhook).
"""

from fakes.wechat.app import create_fake_wechat_app, start_fake_wechat
from fakes.wechat.face import EMPTY_MD5, person_md5s
from fakes.wechat.protocol import (
    ERRMSG,
    P_CODE2SESSION,
    P_CUSTOM,
    P_FACE_GETINFO,
    P_FACE_USERIDKEY,
    P_MENU_CREATE,
    P_STABLE_TOKEN,
    P_SUBSCRIBE,
    P_TEMPLATE,
    P_USER_INFO,
)
from fakes.wechat.receipts import RECEIPT_SUCCESS, RECEIPT_SYSTEM_FAILED, RECEIPT_USER_BLOCK
from fakes.wechat.state import (
    CUSTOM_QUOTA,
    FAKE_STATE_KEY,
    FORCE_REFRESH_INTERVAL,
    FORCE_REFRESH_PER_DAY,
    FakeWeChatState,
)

__all__ = [
    "CUSTOM_QUOTA",
    "EMPTY_MD5",
    "ERRMSG",
    "FAKE_STATE_KEY",
    "FORCE_REFRESH_INTERVAL",
    "FORCE_REFRESH_PER_DAY",
    "FakeWeChatState",
    "P_CODE2SESSION",
    "P_CUSTOM",
    "P_FACE_GETINFO",
    "P_FACE_USERIDKEY",
    "P_MENU_CREATE",
    "P_STABLE_TOKEN",
    "P_SUBSCRIBE",
    "P_TEMPLATE",
    "P_USER_INFO",
    "RECEIPT_SUCCESS",
    "RECEIPT_SYSTEM_FAILED",
    "RECEIPT_USER_BLOCK",
    "create_fake_wechat_app",
    "person_md5s",
    "start_fake_wechat",
]
