"""The face check (人脸核身) as the domain sees it: the gateway's answer, or — when the
face service cannot give one — ``SYSTEM_BUSY`` (503 with Retry-After, nothing changed)."""

from __future__ import annotations

from server.domain import reasons
from server.domain.errors import DomainError
from server.gateways.face import FaceGateway, FaceUnavailable


def face_busy() -> DomainError:
    """SYSTEM_BUSY as the reasons catalogue words it (with its Retry-After)."""
    err = reasons.error("SYSTEM_BUSY")
    err.message = "人脸核身服务繁忙,请稍后重试"
    return err


async def face_passed(face: FaceGateway, face_token: str, *, id_number: str, name: str) -> bool:
    """Whether the face check behind ``face_token`` matched this person."""
    try:
        return await face.verify(face_token, id_number=id_number, name=name)
    except FaceUnavailable:
        raise face_busy() from None


__all__ = ["face_busy", "face_passed"]
