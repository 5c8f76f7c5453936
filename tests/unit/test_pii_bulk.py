"""PiiCipher's bulk speed-ups keep its outputs (issue 18, docs/bulk.md)."""

from __future__ import annotations

import base64
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from server.domain.pii import PiiCipher, normalise


def _cipher(hash_key: str) -> PiiCipher:
    return PiiCipher({"k1": base64.b64encode(os.urandom(32)).decode()}, "k1", hash_key)


@pytest.mark.parametrize("hash_key", ["short", "k" * 64, "长" * 40, os.urandom(48).hex()])
@given(value=st.text(max_size=40), purpose=st.sampled_from(["name", "id_number", "phone"]))
def test_blind_index_is_hmac_sha256_of_the_normalised_value(hash_key: str, value: str, purpose: str) -> None:
    expected = hmac.new(hash_key.encode(), f"{purpose}\x00{normalise(value)}".encode(), "sha256").hexdigest()
    assert _cipher(hash_key).blind_index(value, purpose=purpose) == expected


def test_a_batch_sealer_writes_what_decrypt_reads_each_under_its_own_nonce() -> None:
    pii = _cipher("h")
    sealer = pii.sealer(3)
    tokens = [sealer.encrypt("张三", b"name"), sealer.encrypt("张三", b"name"),
              sealer.encrypt("110101199003071234", b"id_number")]
    assert [pii.decrypt(t, purpose=p) for t, p in zip(tokens, ["name", "name", "id_number"], strict=True)] == [
        "张三", "张三", "110101199003071234"]
    assert all(t.startswith("k1$") for t in tokens)
    nonces = {base64.b64decode(t.partition("$")[2])[:12] for t in tokens}
    assert len(nonces) == 3
    with pytest.raises(InvalidTag):  # the purpose is bound as associated data
        pii.decrypt(tokens[0], purpose="id_number")
    with pytest.raises(RuntimeError):  # never a nonce twice: the sealer is spent
        sealer.encrypt("李四", b"name")


@given(st.binary(min_size=32, max_size=32))
def test_psn_no_is_still_the_first_60_bits_of_sha256_in_19_digits(raw: bytes) -> None:
    """psn_no is stored and shown: a faster spelling must keep every value."""
    import hashlib

    from server.domain.registry import psn_no_for

    hashed = raw.hex()
    first15 = hashlib.sha256(hashed.encode()).hexdigest()[:15]
    assert psn_no_for(hashed) == "P" + str(int(first15, 16)).zfill(19)[:19]
