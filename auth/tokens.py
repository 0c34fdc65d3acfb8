"""Allowed API tokens, kept only as SHA-256 digests and compared in constant time.

Entries are either the token itself or ``sha256:<hex>`` of it, so config.json need not hold secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

HASH_PREFIX = "sha256:"


def _utf8(token: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 (a 0xFF) to lone surrogates, which strict UTF-8
    # cannot encode: keep them as their original bytes, so such a token is simply wrong (403), not a 500.
    return token.encode("utf-8", errors="surrogateescape")


def hash_token(token: str) -> str:
    """The ``sha256:<hex>`` form of a token, as accepted in ``allowed_tokens``."""
    return HASH_PREFIX + hashlib.sha256(_utf8(token)).hexdigest()


def generate_token() -> str:
    return secrets.token_urlsafe(24)


class TokenStore:
    def __init__(self, entries: Iterable[str]) -> None:
        self._digests = tuple(self._digest_of(entry) for entry in entries)

    @staticmethod
    def _digest_of(entry: str) -> bytes:
        if entry.startswith(HASH_PREFIX):
            return bytes.fromhex(entry[len(HASH_PREFIX):])
        return hashlib.sha256(_utf8(entry)).digest()

    def __len__(self) -> int:
        return len(self._digests)

    def is_valid(self, token: str) -> bool:
        # Hashing first gives equal-length inputs to compare_digest; checking every entry without an early
        # exit keeps the time independent of which entry (if any) matched.
        presented = hashlib.sha256(_utf8(token)).digest()
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(presented, digest)
        return found
