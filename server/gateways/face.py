"""Face verification (人脸核身) gateway: the real one is an HTTP service, the fake follows API.md.

A service that is down, slow or answers nonsense is :class:`FaceUnavailable`; the domain
says what that means to the user (``SYSTEM_BUSY``, nothing changed).
"""

from __future__ import annotations

import json
from typing import Protocol

import aiohttp


class FaceUnavailable(Exception):
    """The face service could not give an answer (down, timed out, unreadable reply)."""


class FaceGateway(Protocol):
    async def verify(self, face_token: str, *, id_number: str, name: str) -> bool:
        """True when the face check behind ``face_token`` matched this person;
        :class:`FaceUnavailable` when the service cannot say."""


class FakeFaceGateway:
    """Demo/test double (API.md): a ``face_token`` starting with ``ok`` passes, any other fails."""

    async def verify(self, face_token: str, *, id_number: str, name: str) -> bool:
        return face_token.startswith("ok")


class HttpFaceGateway:
    """Production: POST {api_base}/face/verify {face_token, id_number, name} → {passed}."""

    def __init__(self, session: aiohttp.ClientSession, api_base: str, timeout: float = 5.0) -> None:
        self._session = session
        self._base = api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def verify(self, face_token: str, *, id_number: str, name: str) -> bool:
        try:
            async with self._session.post(
                f"{self._base}/face/verify",
                json={"face_token": face_token, "id_number": id_number, "name": name},
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 500:
                    raise FaceUnavailable(f"face service answered {resp.status}")
                return bool(json.loads(raw).get("passed"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise FaceUnavailable(type(err).__name__) from None
