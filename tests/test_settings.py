"""Settings and auth configuration: key parsing, loopback rule, conventional env names."""

from __future__ import annotations

from typing import Any

import pytest

from server.settings import ApiKey, Settings, is_loopback, key_fingerprint, parse_api_keys


def test_api_keys_parse_and_errors_name_the_problem() -> None:
    assert parse_api_keys(" ann:a:viewer , bo:b:admin ,") == {"a": ApiKey("ann", "viewer"), "b": ApiKey("bo", "admin")}
    assert parse_api_keys("") == {}
    with pytest.raises(ValueError, match="'name:key:role'"):
        parse_api_keys("justakey")
    with pytest.raises(ValueError, match="not one of viewer, operator, approver, admin"):
        parse_api_keys("x:k:root")
    with pytest.raises(ValueError, match="the name 'ann' is used twice"):
        parse_api_keys("ann:a:viewer,ann:b:admin")
    with pytest.raises(ValueError, match="repeats the key of ann"):
        parse_api_keys("ann:a:viewer,bo:a:admin")
    with pytest.raises(ValueError, match="name 'a b' must be") as caught:
        parse_api_keys("a b:secret-key:viewer")
    assert "secret-key" not in str(caught.value)


def test_key_names_do_not_depend_on_the_order_of_the_list(caplog: pytest.LogCaptureFixture) -> None:
    """Reordering RIMAS_API_KEYS must not relabel who approved what in existing audit trails."""
    first = parse_api_keys("s3cret-one:approver,s3cret-two:admin")  # deprecated form: named by fingerprint
    second = parse_api_keys("s3cret-two:admin,s3cret-one:approver")
    assert first == second
    assert first["s3cret-one"].name == key_fingerprint("s3cret-one") != key_fingerprint("s3cret-two")
    assert "deprecated 'key:role' form" in caplog.text
    named = parse_api_keys("alice:s3cret-one:approver,bob:s3cret-two:admin")
    assert parse_api_keys("bob:s3cret-two:admin,alice:s3cret-one:approver") == named
    assert named["s3cret-one"] == ApiKey("alice", "approver")
    assert parse_api_keys("carol:with:colons:viewer")["with:colons"] == ApiKey("carol", "viewer")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.5.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.4", False), ("example.org", False)],
)  # fmt: skip
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_conventional_env_names(settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/rimas")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RIMAS_PORT", "9001")
    s = Settings()
    assert s.database_url == "postgresql://u:p@db:5432/rimas"
    assert s.qdrant_url == "http://qdrant:6333"
    assert s.llm_mode == "llm"
    assert s.port == 9001
    assert "sk-test" not in repr(s)


def test_defaults_are_embedded_and_deterministic(settings_factory: Any) -> None:
    s = Settings()
    assert s.database_url is None and s.qdrant_url is None
    assert s.llm_mode == "deterministic"
    assert s.host == "127.0.0.1" and s.port == 8000
    assert not s.auth_enabled


def test_serve_refuses_public_bind_without_keys(settings_factory: Any) -> None:
    from server.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "8765"]) == 2
