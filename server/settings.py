"""Typed service settings, read from the environment (prefix ``RIMAS_``) and ``.env``.

The conventional names ``DATABASE_URL``, ``QDRANT_URL``, ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` are
read without the prefix. With no ``DATABASE_URL`` the service runs an embedded PostgreSQL under
``<data_dir>/pg``; with no ``QDRANT_URL`` it uses Qdrant local mode under ``<data_dir>/qdrant``.
Read settings through :func:`get_settings` (cached) so every part of the service sees the same values.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    embedding_model: str = Field(
        "text-embedding-3-small", description="OpenAI embedding model (used only when OPENAI_API_KEY is set)."
    )
    models_dir: Path | None = Field(None, description="Model registry folder; unset = <data_dir>/models.")
    api_keys: str = Field(
        "",
        description="Comma-separated 'key:role' pairs (roles: viewer, operator, approver, admin). "
        "Empty = auth off, and the server then binds to loopback only.",
    )
    pool_min_size: int = Field(1, ge=1, description="Minimum connections in the database pool.")
    pool_max_size: int = Field(10, ge=1, description="Maximum connections in the database pool.")
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
    run_timeout_seconds: float = Field(
        900.0, gt=0, description="A run still executing after this many seconds ends with status timeout."
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

    def api_key_roles(self) -> dict[str, Role]:
        return parse_api_keys(self.api_keys)


def parse_api_keys(value: str) -> dict[str, Role]:
    """Parse ``key:role,key:role`` into a mapping; errors say which entry is wrong and what is allowed."""
    keys: dict[str, Role] = {}
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, role = entry.rpartition(":")
        if not sep or not key:
            raise ValueError(f"RIMAS_API_KEYS entry {entry!r} must look like 'key:role'")
        if role not in ROLES:
            raise ValueError(f"RIMAS_API_KEYS role {role!r} is not one of {', '.join(ROLES)}")
        keys[key] = role
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
