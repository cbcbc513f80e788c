"""Typed service settings, read from the environment (prefix ``RIMAS_``) and ``.env``.

The conventional names ``DATABASE_URL``, ``QDRANT_URL``, ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are
read without the prefix. With no ``DATABASE_URL`` the service runs an embedded PostgreSQL under
``<data_dir>/pg``; with no ``QDRANT_URL`` it uses Qdrant local mode under ``<data_dir>/qdrant``.
Read settings through :func:`get_settings` (cached) so every part of the service sees the same values.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

Role = Literal["viewer", "operator", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver", "admin")


class Settings(BaseSettings):
    """Every knob of the service. Field docs are the configuration reference (see README)."""

    model_config = SettingsConfigDict(
        env_prefix="RIMAS_",
        env_file=".env",
        env_ignore_empty=True,  # VAR= (as compose passes unset values) means "not set"
        extra="ignore",
        populate_by_name=True,
    )

    host: str = Field("127.0.0.1", description="Address the API binds to.")
    console: bool = Field(True, description="Serve the operations console at /ui (one per process).")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    data_dir: Path = Field(Path(".rimas"), description="Where embedded data lives (pg/, qdrant/, models/).")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "RIMAS_DATABASE_URL"),
        description="PostgreSQL URL; unset = embedded PostgreSQL under <data_dir>/pg.",
    )
    qdrant_url: str | None = Field(
        None,
        validation_alias=AliasChoices("QDRANT_URL", "RIMAS_QDRANT_URL"),
        description="Qdrant server URL; unset = local mode under <data_dir>/qdrant.",
    )
    qdrant_api_key: SecretStr | None = Field(None, description="API key for a Qdrant server.")
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "RIMAS_OPENAI_API_KEY"),
        description="Enables the LLM policies; unset = deterministic policies only.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "RIMAS_OPENAI_BASE_URL"),
        description="Any OpenAI-compatible server (vLLM, Ollama, llama.cpp).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name used by the LLM policies.")
    llm_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Seconds an LLM call may take before its policy falls back to the rules."
    )
    embedding_model: str = Field(
        "text-embedding-3-small", description="OpenAI embedding model (used only when OPENAI_API_KEY is set)."
    )
    models_dir: Path | None = Field(None, description="Model registry folder; unset = <data_dir>/models.")
    api_keys: str = Field(
        "",
        description="Comma-separated 'name:key:role' entries (roles: viewer, operator, approver, admin); the name "
        "is who the audit trail records. The old 'key:role' form still works (deprecated; the name is then "
        "'key-' + a fingerprint of the key). Empty = auth off, and the server then binds to loopback only.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated browser origins allowed to call the API (e.g. https://smith.langchain.com for "
        "Studio, http://localhost:3000 for Agent Chat UI). With auth off, loopback origins are always allowed.",
    )
    pool_min_size: int = Field(1, ge=1, description="Minimum connections in the database pool.")
    pool_max_size: int = Field(20, ge=1, description="Maximum connections in the database pool (grow it with workers).")
    seed_on_start: bool = Field(True, description="Seed demo data at start-up when the database is empty.")
    train_models_on_start: bool = Field(
        True, description="Train the delay and demand models from the seeded data when none is stored."
    )
    seed: int = Field(7, description="Seed of the synthetic data generator.")
    seed_scale: Literal["small", "demo"] = Field("demo", description="Size of the seeded demo data.")
    log_level: str = Field("INFO", description="Logging level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool = Field(True, description="Log one JSON object per line (false: plain text).")
    langgraph_config: Path = Field(
        Path("langgraph.json"),
        description="The langgraph.json whose graphs are served as assistants (graph paths are relative to it).",
    )
    sse_ping_seconds: float = Field(5.0, gt=0, description="Seconds between SSE heartbeat comments.")
    run_buffer_events: int = Field(1000, ge=10, description="Events kept per run for SSE replay (Last-Event-ID).")
    run_buffer_ttl_seconds: float = Field(
        300.0, ge=0, description="Seconds a finished run's events stay replayable in memory."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body accepted (bytes); larger bodies get 413."
    )
    max_metadata_bytes: int = Field(
        64 * 1024, ge=256, description="Largest thread or run metadata, as JSON (bytes); larger gets 413."
    )
    max_input_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest run input, command or context, as JSON (bytes); larger gets 413."
    )
    max_json_depth: int = Field(
        32, ge=4, le=200, description="Deepest nesting of objects and arrays accepted in a JSON body; deeper gets 422."
    )
    workers: int = Field(
        32, ge=0, le=1000, description="Runs this process executes at once (0: it only queues); a larger burst waits "
        "in the queue behind whole runs.",
    )
    run_max_attempts: int = Field(
        3, ge=1, le=20, description="Executions of a run whose worker died before it is recorded as an error."
    )
    run_lease_seconds: float = Field(
        30.0, ge=0.5, description="A run whose worker has not renewed its lease for this long is queued again."
    )
    run_poll_seconds: float = Field(1.0, gt=0, description="Idle workers look for runs at least this often.")
    cron_poll_seconds: float = Field(
        5.0, ge=0.2, le=300, description="Seconds between two looks for due crons (a cron fires at most this late)."
    )
    drain_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM, executing runs get this long to finish before they are queued again."
    )
    webhook_allowed_hosts: str = Field(
        "", description="Comma-separated hosts run webhooks may call ('*.example.com' for subdomains); empty = none."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Signs webhook deliveries (HMAC-SHA256, X-RIMAS-Signature); unset = unsigned."
    )
    webhook_max_attempts: int = Field(5, ge=1, le=20, description="Deliveries tried per webhook (with backoff).")
    run_timeout_seconds: float = Field(
        900.0, gt=0, description="A run still executing after this many seconds ends with status timeout."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send the request line and headers, counted from the connection "
        "opening (or the previous response ending, on keep-alive); slower gets 408 and the connection closed "
        "(silently if nothing at all was sent).",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Seconds a client has to send the whole request body once its headers are in; slower gets "
        "408 and the connection closed.",
    )
    keep_alive_seconds: int = Field(
        5,
        ge=1,
        description="Seconds an idle keep-alive connection stays open between requests (uvicorn); at most "
        "header_timeout_seconds, by which the next request's headers are due.",
    )

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def auth_enabled(self) -> bool:
        return bool(parse_api_keys(self.api_keys))

    @property
    def llm_mode(self) -> Literal["llm", "deterministic"]:
        return "llm" if self.openai_api_key is not None else "deterministic"

    def api_key_roles(self) -> dict[str, ApiKey]:
        """The configured keys: secret -> its name and role."""
        return parse_api_keys(self.api_keys)

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def webhook_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip()]


KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    """A configured API key's identity: the stable ``name`` recorded in audit trails, and its ``role``."""

    name: str
    role: Role


def key_fingerprint(key: str) -> str:
    """The name of a key configured without one (old ``key:role`` form): stable whatever the list order."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@lru_cache(maxsize=8)
def parse_api_keys(value: str) -> dict[str, ApiKey]:
    """Parse ``name:key:role,...`` (or the deprecated ``key:role``) into secret -> :class:`ApiKey`.

    Errors say which entry is wrong (never echoing the secret) and what is allowed; names must be unique."""
    keys: dict[str, ApiKey] = {}
    names: set[str] = set()
    for position, raw in enumerate(value.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        head, sep, role = entry.rpartition(":")
        if not sep or not head:
            raise ValueError(f"RIMAS_API_KEYS entry {position} must look like 'name:key:role'")
        if role not in ROLES:
            raise ValueError(f"RIMAS_API_KEYS entry {position}: role {role!r} is not one of {', '.join(ROLES)}")
        name, sep, key = head.partition(":")
        if not sep:
            key, name = head, key_fingerprint(head)
            log.warning(
                "RIMAS_API_KEYS entry %d uses the deprecated 'key:role' form; it is recorded as %s. Write "
                "'name:key:role' so audit trails name who decided.", position, name,
            )  # fmt: skip
        if not KEY_NAME.match(name):
            raise ValueError(f"RIMAS_API_KEYS entry {position}: name {name!r} must be 1-64 letters, digits or . _ @ -")
        if not key:
            raise ValueError(f"RIMAS_API_KEYS entry {position} ({name}) has an empty key")
        if name in names:
            raise ValueError(f"RIMAS_API_KEYS entry {position}: the name {name!r} is used twice; names must be unique")
        if key in keys:
            raise ValueError(f"RIMAS_API_KEYS entry {position} ({name}) repeats the key of {keys[key].name}")
        names.add(name)
        keys[key] = ApiKey(name, role)
    return keys


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache with ``get_settings.cache_clear()``)."""
    return Settings()
