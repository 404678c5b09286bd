"""Payload encryption: customer data and amounts never reach Temporal's history in plain text.

AES-256-GCM per payload, with a fresh nonce, the key's id in the payload's metadata (so keys rotate:
the first configured key encrypts, every configured key still decrypts) and the key id bound as
associated data. `REFUNDS_PAYLOAD_KEYS` holds `id:base64-of-32-bytes` entries, comma-separated.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class KeyConfigError(ValueError):
    pass


def parse_keys(configured: str) -> list[tuple[str, bytes]]:
    """`id:base64` entries; each key must be 32 bytes (AES-256)."""
    keys = []
    for entry in (part.strip() for part in configured.split(",")):
        if not entry:
            continue
        key_id, _, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as err:
            raise KeyConfigError(f"payload key {key_id!r} is not base64") from err
        if not key_id or len(key) != 32:
            raise KeyConfigError(f"payload key {key_id!r} must be an id and 32 bytes of base64")
        keys.append((key_id, key))
    return keys


def new_key_entry(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyConfigError("at least one payload key is needed")
        self._active_id, active = keys[0]
        self._active = AESGCM(active)
        self._by_id = {key_id: AESGCM(key) for key_id, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._active.encrypt(nonce, payload.SerializeToString(), self._active_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self._active_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """Encrypted payloads are opened with the key they name; anything else passes through
        (histories written before encryption was switched on)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")  # no key has a broken name
        cipher = self._by_id.get(key_id)
        if cipher is None:
            raise KeyConfigError(f"payload encrypted with unknown key {key_id!r}")
        try:
            opened = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except (InvalidTag, ValueError) as err:  # ValueError: too short to hold a nonce
            raise KeyConfigError(f"payload does not open with key {key_id!r}") from err
        return Payload.FromString(opened)
