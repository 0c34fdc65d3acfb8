"""Allowed API tokens, kept only as SHA-256 digests and compared in constant time.

Entries are either the token itself or ``sha256:<hex>`` of it, so config.json need not hold secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

HASH_PREFIX = "sha256:"


def hash_token(token: str) -> str:
    """The ``sha256:<hex>`` form of a token, as accepted in ``allowed_tokens``."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_token() -> str:
    return secrets.token_urlsafe(24)


class TokenStore:
    def __init__(self, entries: Iterable[str]) -> None:
        self._digests = tuple(self._digest_of(entry) for entry in entries)

    @staticmethod
    def _digest_of(entry: str) -> bytes:
        if entry.startswith(HASH_PREFIX):
            return bytes.fromhex(entry[len(HASH_PREFIX):])
        return hashlib.sha256(entry.encode("utf-8")).digest()

    def __len__(self) -> int:
        return len(self._digests)

    def is_valid(self, token: str) -> bool:
        # Hashing first gives equal-length inputs to compare_digest; checking every entry without an early
        # exit keeps the time independent of which entry (if any) matched.
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(presented, digest)
        return found
