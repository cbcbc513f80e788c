"""Run-completion webhooks (``server.runtime.webhooks``), delivered to a real HTTP receiver.

The receiver is a uvicorn server on a free port of 127.0.0.1, in a thread of its own, serving a tiny ASGI app
that records every request and answers from a script (status, headers, delay) set by each test. Delays between
attempts are recorded through the injected ``sleep`` instead of being waited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from langchain_core.messages import AIMessage

from server.runtime import webhooks
from server.runtime.webhooks import (
    DeliveryResult,
    WebhookRefused,
    WebhookSettings,
    check_webhook_url,
    deliver,
    run_payload,
    sign,
    verify,
)

SECRET = "s3cr3t-for-tests"
LOCAL = ("127.0.0.1",)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A real HTTP server on 127.0.0.1: records requests, answers the scripted replies (then 200)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?token=receiver-token"
        self.seen: list[Seen] = []
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        config = uvicorn.Config(self.app, interface="asgi3", lifespan="off", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.seen.clear()
            self.replies = list(replies)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self.lock:
            self.seen.append(Seen(scope["method"], scope["path"], headers, body))
            reply = self.replies.pop(0) if self.replies else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        raw = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"answer"})

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.script()
    return receiver_server


class Sleeps(list[float]):
    """The injected ``sleep``: records each delay and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {"allowed_hosts": LOCAL, "secret": SECRET, "max_attempts": 5, "backoff_s": 1.0,
                              "timeout_s": 2.0}  # fmt: skip
    values.update(overrides)
    return WebhookSettings(**values)


PAYLOAD = {
    "run_id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "status": "success",
    "created_at": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "values": {"answer": "é", "n": 3},
}


def assert_signed(seen: Seen) -> None:
    timestamp = int(seen.headers["x-rimas-timestamp"])
    assert abs(time.time() - timestamp) < 60
    assert verify(seen.body, SECRET, timestamp, seen.headers["x-rimas-signature"])


# --- delivery ---------------------------------------------------------------------------------------------------


async def test_signed_delivery_verifies(receiver: Receiver) -> None:
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(), sleep=sleeps)

    assert result == DeliveryResult(True, 1, 200, None, result.delivery_id)
    assert str(uuid.UUID(result.delivery_id)) == result.delivery_id
    assert sleeps == []
    [seen] = receiver.seen
    assert (seen.method, seen.path) == ("POST", "/hook")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "rimas-webhooks"
    assert seen.headers["x-rimas-delivery"] == result.delivery_id
    # compact JSON, datetimes and UUIDs as their str()
    assert seen.body == (
        b'{"run_id":"00000000-0000-4000-8000-000000000001","status":"success",'
        b'"created_at":"2025-01-02 03:04:05+00:00","values":{"answer":"\\u00e9","n":3}}'
    )
    timestamp = int(seen.headers["x-rimas-timestamp"])
    signature = seen.headers["x-rimas-signature"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + seen.body, hashlib.sha256).hexdigest()
    assert signature == f"v1={expected}"
    assert verify(seen.body, SECRET, timestamp, signature)
    assert not verify(seen.body + b" ", SECRET, timestamp, signature)
    assert not verify(seen.body, "another-secret", timestamp, signature)
    assert not verify(seen.body, SECRET, timestamp + 1, signature)
    assert not verify(seen.body, SECRET, timestamp, signature, now=timestamp + 301)
    assert verify(seen.body, SECRET, timestamp, signature, now=timestamp + 300)


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    signature = sign(body, "k", 1_700_000_000)
    assert signature == "v1=" + hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert verify(body, "k", 1_700_000_000, signature, now=1_700_000_010)
    assert not verify(body, "k", 1_700_000_000, signature, now=1_700_000_000 - 301)  # from the future
    assert not verify(body, "k", 1_700_000_000, signature, now=1_700_000_000 + 301, tolerance_s=300)
    assert not verify(body, "k", 1_700_000_000, signature.removeprefix("v1="), now=1_700_000_000)
    assert not verify(body, "k", 1_700_000_000, "v1=é", now=1_700_000_000)


async def test_server_errors_are_retried_with_backoff_and_one_delivery_id(receiver: Receiver) -> None:
    receiver.script(Reply(500), Reply(503), Reply(200))
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(backoff_s=1.0), sleep=sleeps)

    assert (result.ok, result.attempts, result.status, result.error) == (True, 3, 200, None)
    assert sleeps == [1.0, 2.0]
    assert len(receiver.seen) == 3
    assert {s.headers["x-rimas-delivery"] for s in receiver.seen} == {result.delivery_id}
    assert len({s.body for s in receiver.seen}) == 1
    for seen in receiver.seen:
        assert_signed(seen)


async def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.script(*[Reply(502)] * 5)
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(max_attempts=4, backoff_s=0.5), sleep=sleeps)

    assert (result.ok, result.attempts, result.status, result.error) == (False, 4, 502, "HTTP 502")
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(receiver.seen) == 4


async def test_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.script(Reply(404), Reply(200))
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(), sleep=sleeps)

    assert (result.ok, result.attempts, result.status, result.error) == (False, 1, 404, "HTTP 404")
    assert sleeps == []
    assert len(receiver.seen) == 1


@pytest.mark.parametrize("follow_by_default", [None, True], ids=["own-client", "client-following-redirects"])
async def test_redirect_is_not_followed(receiver: Receiver, follow_by_default: bool | None) -> None:
    target = f"http://127.0.0.1:{receiver.port}/landed"
    receiver.script(Reply(302, {"Location": target}), Reply(200), Reply(200))
    sleeps = Sleeps()
    if follow_by_default is None:
        result = await deliver(receiver.url, PAYLOAD, settings(), sleep=sleeps)
    else:
        async with httpx.AsyncClient(follow_redirects=follow_by_default) as client:
            result = await deliver(receiver.url, PAYLOAD, settings(), client=client, sleep=sleeps)

    assert (result.ok, result.attempts, result.status) == (False, 1, 302)
    assert result.error == "HTTP 302: redirects are not followed; the webhook URL must answer 2xx itself"
    assert [s.path for s in receiver.seen] == ["/hook"]
    assert sleeps == []


async def test_retry_after_is_honoured_up_to_60s(receiver: Receiver) -> None:
    receiver.script(
        Reply(429, {"Retry-After": "7"}),
        Reply(503, {"Retry-After": "120"}),
        Reply(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),  # a date: the backoff applies
        Reply(429, {"Retry-After": "0"}),  # shorter than the backoff: the backoff applies
        Reply(204),
    )
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(backoff_s=1.0), sleep=sleeps)

    assert (result.ok, result.attempts, result.status) == (True, 5, 204)
    assert sleeps == [7.0, 60.0, 4.0, 8.0]


async def test_network_errors_are_retried() -> None:
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    result = await deliver(f"http://127.0.0.1:{port}/hook", PAYLOAD, settings(max_attempts=3, backoff_s=0.25),
                           sleep=sleeps)  # fmt: skip

    assert (result.ok, result.attempts, result.status) == (False, 3, None)
    assert result.error is not None and result.error.startswith("ConnectError")
    assert sleeps == [0.25, 0.5]


async def test_timeouts_are_retried(receiver: Receiver) -> None:
    receiver.script(Reply(200, delay=0.6), Reply(200))
    sleeps = Sleeps()
    result = await deliver(receiver.url, PAYLOAD, settings(timeout_s=0.15), sleep=sleeps)

    assert (result.ok, result.attempts, result.status) == (True, 2, 200)
    assert sleeps == [1.0]
    assert [s.headers["x-rimas-delivery"] for s in receiver.seen] == [result.delivery_id] * 2


async def test_unsigned_without_secret_and_warned_once(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(webhooks, "_unsigned_warned", False)
    caplog.set_level(logging.WARNING, logger=webhooks.__name__)
    first = await deliver(receiver.url, PAYLOAD, settings(secret=None), sleep=Sleeps())
    second = await deliver(receiver.url, PAYLOAD, settings(secret=None), sleep=Sleeps())

    assert first.ok and second.ok
    assert first.delivery_id != second.delivery_id
    for seen in receiver.seen:
        assert "x-rimas-signature" not in seen.headers
        assert "x-rimas-timestamp" not in seen.headers
        assert seen.headers["content-type"] == "application/json"
    assert [s.headers["x-rimas-delivery"] for s in receiver.seen] == [first.delivery_id, second.delivery_id]
    unsigned = [r for r in caplog.records if "unsigned" in r.getMessage()]
    assert len(unsigned) == 1 and unsigned[0].levelno == logging.WARNING


async def test_logs_show_neither_the_secret_nor_the_path(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=webhooks.__name__)
    receiver.script(Reply(500), Reply(500))
    result = await deliver(receiver.url, PAYLOAD, settings(max_attempts=2), sleep=Sleeps())

    assert not result.ok
    records = [r for r in caplog.records if r.name == webhooks.__name__]
    assert records, "the attempts are logged"
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    assert SECRET not in text
    assert "receiver-token" not in text
    assert f"http://127.0.0.1:{receiver.port}" in text


async def test_the_allow_list_is_checked_again_before_delivering(receiver: Receiver) -> None:
    result = await deliver(receiver.url, PAYLOAD, settings(allowed_hosts=("hooks.example.com",)), sleep=Sleeps())

    assert (result.ok, result.attempts, result.status) == (False, 0, None)
    assert result.error == (
        "webhook: IP address '127.0.0.1' is not allowed; only IP addresses listed in RIMAS_WEBHOOK_ALLOWED_HOSTS are"
    )
    assert receiver.seen == []


async def test_a_payload_json_cannot_hold_is_a_failed_delivery(receiver: Receiver) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    result = await deliver(receiver.url, loop, settings(), sleep=Sleeps())

    assert (result.ok, result.attempts) == (False, 0)
    assert result.error is not None and result.error.startswith("the payload is not JSON-serialisable")
    assert receiver.seen == []


# --- the allow-list ---------------------------------------------------------------------------------------------

ALLOWED = ("hooks.example.com", "*.x.com", "10.0.0.5", "::1", "Bücher.Example")
NOT_LISTED = "is not allowed; the host must be listed in RIMAS_WEBHOOK_ALLOWED_HOSTS"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://hooks.example.com/run-done?k=v#frag", "https://hooks.example.com/run-done?k=v"),
        ("HTTP://HOOKS.Example.COM:8443/a", "http://hooks.example.com:8443/a"),
        ("https://a.x.com/", "https://a.x.com/"),
        ("https://deep.a.x.com/", "https://deep.a.x.com/"),
        ("http://10.0.0.5:9000/h", "http://10.0.0.5:9000/h"),
        ("http://[::1]/h", "http://[::1]/h"),
        ("https://bücher.example/h", "https://xn--bcher-kva.example/h"),
    ],
)
def test_allowed_urls_are_normalised(url: str, normalised: str) -> None:
    assert check_webhook_url(url, ALLOWED) == normalised


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://evil.example.org/h", f"webhook: host 'evil.example.org' {NOT_LISTED}"),
        ("https://x.com/h", f"webhook: host 'x.com' {NOT_LISTED}"),  # *.x.com: subdomains only
        ("https://evilx.com/h", f"webhook: host 'evilx.com' {NOT_LISTED}"),
        ("https://hooks.example.com.evil.org/h", f"webhook: host 'hooks.example.com.evil.org' {NOT_LISTED}"),
        ("https://user:pw@hooks.example.com/h",
         "webhook: credentials in the URL (user:password@) are not allowed; receivers check X-RIMAS-Signature"),
        ("https://evil.org\\@hooks.example.com/h",
         "webhook: the URL contains whitespace, a backslash or a control character"),
        ("ftp://hooks.example.com/h", "webhook: scheme 'ftp' is not allowed; use http or https"),
        ("file:///etc/passwd", "webhook: scheme 'file' is not allowed; use http or https"),
        ("hooks.example.com/h", "webhook: the URL has no scheme; use an absolute http or https URL"),
        ("http:///h", "webhook: the URL has no host; use an absolute URL like https://hooks.example.com/path"),
        ("http://10.0.0.6/h",
         "webhook: IP address '10.0.0.6' is not allowed; only IP addresses listed in RIMAS_WEBHOOK_ALLOWED_HOSTS are"),
        ("http://127.0.0.1:8000/h",
         "webhook: IP address '127.0.0.1' is not allowed; only IP addresses listed in RIMAS_WEBHOOK_ALLOWED_HOSTS are"),
        ("http://[::2]/h",
         "webhook: IP address '::2' is not allowed; only IP addresses listed in RIMAS_WEBHOOK_ALLOWED_HOSTS are"),
        ("http://2130706433/h",
         "webhook: host '2130706433' is an IP address in a non-standard form; IP addresses must be written in "
         "standard form and listed in RIMAS_WEBHOOK_ALLOWED_HOSTS"),
        ("http://0x0a.0.0.5/h",
         "webhook: host '0x0a.0.0.5' is an IP address in a non-standard form; IP addresses must be written in "
         "standard form and listed in RIMAS_WEBHOOK_ALLOWED_HOSTS"),
        ("http://hooks.example.com:0/h", "webhook: port 0 is not valid; use 1-65535"),
    ],
)  # fmt: skip
def test_refused_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url(url, ALLOWED)
    assert str(refused.value) == message
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize("allowed", [(), ("",), (" ",)])
def test_an_empty_allow_list_disables_webhooks(allowed: tuple[str, ...]) -> None:
    with pytest.raises(WebhookRefused) as refused:
        check_webhook_url("https://hooks.example.com/h", allowed)
    assert str(refused.value) == (
        "webhook: webhooks are disabled on this server; set RIMAS_WEBHOOK_ALLOWED_HOSTS to the hosts that may "
        "receive them"
    )


def test_an_ip_literal_needs_that_exact_ip_listed() -> None:
    assert check_webhook_url("http://127.0.0.1:1/h", LOCAL) == "http://127.0.0.1:1/h"
    assert check_webhook_url("http://[::1]/h", ("[::1]",)) == "http://[::1]/h"
    with pytest.raises(WebhookRefused):
        check_webhook_url("http://127.0.0.2/h", LOCAL)
    with pytest.raises(WebhookRefused):  # a wildcard never admits an address
        check_webhook_url("http://127.0.0.1/h", ("*.0.0.1",))


# --- the payload ------------------------------------------------------------------------------------------------


def test_run_payload_has_the_run_record_and_the_values() -> None:
    created = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    run_id = uuid.uuid4()
    row = {
        "run_id": run_id, "thread_id": "t-1", "assistant_id": "chain", "status": "error", "created_at": created,
        "updated_at": created, "metadata": {"m": 1}, "kwargs": {"input": {"q": 1}}, "error": "ValueError: boom",
        "webhook": "https://hooks.example.com/h", "actor": "op-1", "owner_key": 42, "started_at": created,
    }  # fmt: skip
    payload = run_payload(row, {"messages": [AIMessage(content="hi", id="m1")]})

    assert set(payload) == {"run_id", "thread_id", "assistant_id", "status", "created_at", "updated_at",
                            "metadata", "kwargs", "error", "values"}  # fmt: skip
    assert payload["run_id"] == str(run_id)
    assert payload["created_at"] == created.isoformat()
    assert payload["error"] == "ValueError: boom"
    assert payload["values"]["messages"][0]["type"] == "ai"
    assert payload["values"]["messages"][0]["content"] == "hi"
    json.dumps(payload)  # plain JSON types only

    success = run_payload({"run_id": "r", "status": "success", "error": None}, None)
    assert success == {"run_id": "r", "status": "success", "values": None}
