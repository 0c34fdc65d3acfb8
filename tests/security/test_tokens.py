from auth.middleware import token_from_header
from auth.throttle import FailureThrottle
from auth.tokens import TokenStore, hash_token


def test_plain_and_hashed_entries_are_accepted() -> None:
    store = TokenStore(["plain-secret", hash_token("hashed-secret")])
    assert store.is_valid("plain-secret")
    assert store.is_valid("hashed-secret")
    assert not store.is_valid("sha256:" + hash_token("hashed-secret")[7:])  # the digest is not the token
    assert not store.is_valid("")
    assert not store.is_valid("plain-secre")


def test_header_parsing() -> None:
    assert token_from_header("Token abc") == "abc"
    assert token_from_header("bearer abc") == "abc"
    assert token_from_header("Basic abc") is None
    assert token_from_header("Token") is None
    assert token_from_header("Token a b") is None


def test_throttle_refuses_after_max_failures_and_forgets_after_window() -> None:
    now = [0.0]
    throttle = FailureThrottle(3, 10.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("1.2.3.4") == 0
        throttle.record_failure("1.2.3.4")
    assert throttle.retry_after("1.2.3.4") == 10.0
    assert throttle.retry_after("5.6.7.8") == 0
    now[0] = 10.5
    assert throttle.retry_after("1.2.3.4") == 0
