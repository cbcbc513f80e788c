"""Run-completion webhooks: when a run that named a ``webhook`` ends, POST its record and the thread's values.

Only hosts the operator lists in ``RIMAS_WEBHOOK_ALLOWED_HOSTS`` can receive them (:func:`check_webhook_url`,
run when the run is created and again before each delivery, since the list may change while a run waits in
the queue). An entry is a host (``hooks.example.com``), a wildcard (``*.example.com``: its subdomains, not
``example.com`` itself) or an IP address, which is the only way an IP-address URL is accepted. An empty list
disables webhooks.

A delivery is one JSON body, POSTed with these headers (the same on every retry, except the timestamp and the
signature, which are computed again for each attempt):

- ``Content-Type: application/json`` and ``User-Agent: rimas-webhooks``;
- ``X-RIMAS-Delivery: <uuid>``: one id per delivery, repeated on its retries, so a receiver can deduplicate;
- ``X-RIMAS-Timestamp: <unix seconds>``: when this attempt was sent;
- ``X-RIMAS-Signature: v1=<hex>``: HMAC-SHA256, keyed with ``RIMAS_WEBHOOK_SECRET``, of
  ``"<timestamp>." + body`` (the raw body bytes). Both signature headers are left out when no secret is set.

A receiver recomputes the HMAC over the raw body it received (before parsing it), compares in constant time
and refuses timestamps older than a few minutes (:func:`verify` does all three).

Redirects are not followed (a ``3xx`` could point outside the allow-list) and count as a failure. Network
errors, timeouts, ``429`` and ``5xx`` are retried with exponential backoff (a numeric ``Retry-After`` is
honoured up to 60 s); any other ``4xx`` is final. :func:`deliver` never raises for a delivery problem: it
answers a :class:`DeliveryResult`. Logs name the target by its origin only (the path or query may hold a
receiver's token) and never show the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from server.runtime.serde import to_jsonable

log = logging.getLogger(__name__)

ALLOWED_HOSTS_ENV = "RIMAS_WEBHOOK_ALLOWED_HOSTS"
USER_AGENT = "rimas-webhooks"
SIGNATURE_HEADER = "X-RIMAS-Signature"
TIMESTAMP_HEADER = "X-RIMAS-Timestamp"
DELIVERY_HEADER = "X-RIMAS-Delivery"
SIGNATURE_VERSION = "v1"
MAX_URL_LENGTH = 2048
MAX_DELAY_S = 60.0
RUN_FIELDS = ("run_id", "thread_id", "assistant_id", "status", "created_at", "updated_at", "metadata", "kwargs")

# Characters no webhook URL needs, and that parsers disagree about (WHATWG reads "\" as "/").
_FORBIDDEN = re.compile(r"[\s\\\x00-\x1f\x7f]")
# A host made only of numeric labels (decimal, octal or hex): resolvers read it as an IPv4 address.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|\d+)(?:\.(?:0x[0-9a-f]*|\d+))*\.?$")
_RETRY_AFTER = re.compile(r"^\s*(\d{1,9}(?:\.\d+)?)\s*$")

_unsigned_warned = False


class WebhookRefused(ValueError):
    """A ``webhook`` URL this server will not deliver to; the message names the field and what is allowed."""


@dataclass
class WebhookSettings:
    """How deliveries are made: the allow-list, the signing secret (None = unsigned) and the retry policy."""

    allowed_hosts: tuple[str, ...]
    secret: str | None
    max_attempts: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 10.0


@dataclass
class DeliveryResult:
    """How a delivery ended: ``ok`` on a 2xx; ``status`` is the last HTTP status (None if none came back)."""

    ok: bool
    attempts: int
    status: int | None
    error: str | None
    delivery_id: str


# --- the allow-list -------------------------------------------------------------------------------------------


def _refuse(reason: str) -> WebhookRefused:
    return WebhookRefused(f"webhook: {reason}")


def _ascii_host(name: str) -> str:
    """``name`` as the client will send it in DNS (lowercase, IDNA-encoded); '' when it is not a host name."""
    try:
        return httpx.URL(f"http://{name}/").raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError):
        return ""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """``host`` (lowercase ASCII, not an IP) matches an entry exactly, or is a subdomain of a ``*.`` entry."""
    for raw in allowed_hosts:
        entry = raw.strip().lower()
        if entry.startswith("*."):
            suffix = _ascii_host(entry[2:])
            if suffix and host.endswith("." + suffix) and len(host) > len(suffix) + 1:
                return True
        elif entry and _ascii_host(entry) == host:
            return True
    return False


def check_webhook_url(url: str, allowed_hosts: Sequence[str]) -> str:
    """The normalised ``url`` (lowercase scheme and host, IDNA host, no fragment), or :class:`WebhookRefused`.

    Allowed: http or https, no credentials, a host that is in ``allowed_hosts`` (exactly, port ignored) or a
    subdomain of one of its ``*.domain`` entries; an IP address only when that address is listed."""
    if not allowed_hosts or not any(entry.strip() for entry in allowed_hosts):
        raise _refuse(f"webhooks are disabled on this server; set {ALLOWED_HOSTS_ENV} to the hosts that may "
                      "receive them")  # fmt: skip
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN.search(url):
        raise _refuse("the URL contains whitespace, a backslash or a control character")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _refuse(f"not a valid URL ({exc}); use an absolute http or https URL") from None
    if not parsed.scheme:
        raise _refuse("the URL has no scheme; use an absolute http or https URL")
    if parsed.scheme not in ("http", "https"):
        raise _refuse(f"scheme {parsed.scheme!r} is not allowed; use http or https")
    if parsed.userinfo:
        raise _refuse("credentials in the URL (user:password@) are not allowed; receivers check X-RIMAS-Signature")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise _refuse("the URL has no host; use an absolute URL like https://hooks.example.com/path")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise _refuse(f"port {parsed.port} is not valid; use 1-65535")
    address = _ip(host)
    if address is None and (":" in host or _NUMERIC_HOST.match(host)):
        raise _refuse(f"host {host!r} is an IP address in a non-standard form; IP addresses must be written "
                      f"in standard form and listed in {ALLOWED_HOSTS_ENV}")  # fmt: skip
    if address is not None:
        if not any(_ip(entry) == address for entry in allowed_hosts):
            raise _refuse(f"IP address {host!r} is not allowed; only IP addresses listed in {ALLOWED_HOSTS_ENV} are")
    elif not _host_allowed(host, allowed_hosts):
        raise _refuse(f"host {host!r} is not allowed; the host must be listed in {ALLOWED_HOSTS_ENV}")
    return str(parsed.copy_with(fragment=None))


# --- signing ---------------------------------------------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """``v1=<hex>``: HMAC-SHA256 keyed with ``secret`` over ``b"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    body: bytes, secret: str, timestamp: int, signature: str, *, now: int | None = None, tolerance_s: int = 300
) -> bool:
    """True when ``signature`` is :func:`sign` of ``body`` at ``timestamp`` and the timestamp is within
    ``tolerance_s`` of ``now`` (default: the current time). Compares in constant time."""
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp).encode(), signature.strip().encode())


# --- delivery --------------------------------------------------------------------------------------------------


def _origin(url: str) -> str:
    """Scheme, host and port of ``url``: what logs may show of a target."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = parsed.raw_host.decode("ascii")
    return f"{parsed.scheme}://{f'[{host}]' if ':' in host else host}{port}"


def _retry_after(response: httpx.Response) -> float | None:
    """The numeric ``Retry-After`` in seconds (an HTTP date is ignored), capped at :data:`MAX_DELAY_S`."""
    match = _RETRY_AFTER.match(response.headers.get("retry-after", ""))
    return min(float(match.group(1)), MAX_DELAY_S) if match else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _warn_unsigned() -> None:
    global _unsigned_warned
    if not _unsigned_warned:
        _unsigned_warned = True
        log.warning("webhook deliveries are unsigned: set RIMAS_WEBHOOK_SECRET so receivers can check them")


async def deliver(
    url: str,
    payload: Mapping[str, Any],
    settings: WebhookSettings,
    *,
    client: httpx.AsyncClient | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> DeliveryResult:
    """POST ``payload`` to ``url`` until a 2xx, a final failure or ``settings.max_attempts`` attempts.

    ``client`` is used as is (its redirect setting is overridden: never followed), else one is opened for this
    delivery. ``sleep`` waits between attempts (tests record the delays instead)."""
    delivery_id = str(uuid.uuid4())
    try:
        url = check_webhook_url(url, settings.allowed_hosts)
    except WebhookRefused as exc:
        log.warning("webhook refused", extra={"delivery_id": delivery_id, "error": str(exc)})
        return DeliveryResult(False, 0, None, str(exc), delivery_id)
    try:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        error = f"the payload is not JSON-serialisable: {type(exc).__name__}: {exc}"
        log.warning("webhook payload refused", extra={"delivery_id": delivery_id, "error": error})
        return DeliveryResult(False, 0, None, error, delivery_id)
    if not settings.secret:
        _warn_unsigned()
    if client is None:
        async with httpx.AsyncClient(follow_redirects=False, timeout=settings.timeout_s) as own:
            return await _attempts(url, body, settings, own, sleep, delivery_id)
    return await _attempts(url, body, settings, client, sleep, delivery_id)


async def _attempts(
    url: str,
    body: bytes,
    settings: WebhookSettings,
    client: httpx.AsyncClient,
    sleep: Callable[[float], Awaitable[Any]],
    delivery_id: str,
) -> DeliveryResult:
    target = _origin(url)
    max_attempts = max(1, settings.max_attempts)
    status: int | None = None
    error: str | None = None
    for attempt in range(1, max_attempts + 1):
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: delivery_id}
        if settings.secret:
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(body, settings.secret, timestamp)
        retry_after: float | None = None
        try:
            async with asyncio.timeout(settings.timeout_s):  # the whole attempt, not just each socket read
                async with client.stream(
                    "POST", url, content=body, headers=headers, follow_redirects=False, timeout=settings.timeout_s
                ) as response:  # the body is never read: a receiver cannot make us buffer megabytes
                    status = response.status_code
                    retry_after = _retry_after(response)
        except (httpx.TransportError, TimeoutError) as exc:
            status, error, retryable = None, _describe(exc), True
        except Exception as exc:  # a bug or an unexpected client error: report it, do not retry it
            log.exception("webhook delivery crashed", extra={"delivery_id": delivery_id, "target": target})
            return DeliveryResult(False, attempt, None, _describe(exc), delivery_id)
        else:
            if 200 <= status < 300:
                log.debug("webhook delivered", extra={"delivery_id": delivery_id, "target": target,
                                                      "attempt": attempt, "status": status})  # fmt: skip
                return DeliveryResult(True, attempt, status, None, delivery_id)
            retryable = status == 429 or 500 <= status < 600
            if 300 <= status < 400:
                error = f"HTTP {status}: redirects are not followed; the webhook URL must answer 2xx itself"
            else:
                error = f"HTTP {status}"
        if not retryable or attempt == max_attempts:
            break
        delay = min(settings.backoff_s * 2.0 ** min(attempt - 1, 32), MAX_DELAY_S)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.info("webhook attempt failed; retrying", extra={"delivery_id": delivery_id, "target": target,
                 "attempt": attempt, "status": status, "error": error, "delay_s": delay})  # fmt: skip
        await sleep(delay)
    log.warning("webhook delivery failed", extra={"delivery_id": delivery_id, "target": target,
                "attempts": attempt, "status": status, "error": error})  # fmt: skip
    return DeliveryResult(False, attempt, status, error, delivery_id)


def run_payload(run: Mapping[str, Any], values: Any) -> dict[str, Any]:
    """The body LangGraph Server sends: the run record's fields (those present in ``run``; ``error`` only when
    set) and ``values``, the thread's final values, as plain JSON types."""
    payload = {key: run[key] for key in RUN_FIELDS if key in run}
    if run.get("error") is not None:
        payload["error"] = run["error"]
    payload["values"] = values
    return {str(key): to_jsonable(value) for key, value in payload.items()}
