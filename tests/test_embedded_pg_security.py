"""Security of the embedded PostgreSQL: password authentication on every path, private socket directories,
no permission changes outside the data dir, and the migration of clusters made with trust by older versions.

Each test starts its own throw-away cluster in a folder from ``pg_tmp_path`` (tests/conftest.py), so it runs
the same way as root (postgres as ``embedded_postgres``) and as a normal user.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from server import embedded_pg
from server.embedded_pg import PASSWORD_FILE, EmbeddedPostgres, EmbeddedPostgresError, server_account

# Every character that means something in a URL or in SQL: the URL must carry it percent-encoded.
AWKWARD_PASSWORD = "p@ss:/w rd%?#&=+;'\"\\x"
TRUST_HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"


@pytest.fixture(autouse=True)
def _no_libpq_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_uid() -> int:
    """The uid postgres runs as: ``embedded_postgres`` under root, else this user."""
    account = server_account()
    return os.geteuid() if account is None else account.uid


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _query(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(query).fetchall()


def _execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


def _refusal(url: str) -> str:
    """The error of a connection attempt that must fail."""
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(url, connect_timeout=10).close()
    return str(caught.value)


@pytest.fixture(scope="module")
def cluster(pg_tmp_dirs: Callable[[], Path]) -> Iterator[EmbeddedPostgres]:
    """A cluster listening on a Unix socket and on 127.0.0.1, whose password needs percent-encoding."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedded_pg, "_new_password", lambda: AWKWARD_PASSWORD)
        pg = EmbeddedPostgres(pg_tmp_dirs() / "data", port=_free_port(), fast=True)
        pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def _unix_url(pg: EmbeddedPostgres, user: str = "postgres", password: str | None = None) -> str:
    auth = user if password is None else f"{user}:{password}"
    return f"postgresql://{auth}@/postgres?host={pg.socket_dir}&port={pg.port}"


def _tcp_url(pg: EmbeddedPostgres, user: str = "postgres", password: str | None = None) -> str:
    auth = user if password is None else f"{user}:{password}"
    return f"postgresql://{auth}@127.0.0.1:{pg.port}/postgres"


# ---------------------------------------------------------------- authentication


def _hba_rules(path: Path) -> list[list[str]]:
    """The words of each rule of a pg_hba.conf (comments dropped)."""
    rules = [line.split("#", 1)[0].split() for line in path.read_text().splitlines()]
    return [words for words in rules if words]


def test_pg_hba_has_only_password_rules(cluster: EmbeddedPostgres) -> None:
    rules = _hba_rules(cluster.data_dir / "pg_hba.conf")
    assert rules, "pg_hba.conf has no rule"
    assert all("trust" not in words for words in rules), rules
    loaded = _query(cluster.url, "SELECT DISTINCT auth_method FROM pg_hba_file_rules")
    assert loaded == [("scram-sha-256",)]


def test_the_password_file_is_private_and_the_url_carries_it_percent_encoded(cluster: EmbeddedPostgres) -> None:
    password_file = cluster.data_dir / PASSWORD_FILE
    assert _mode(password_file) == 0o600
    assert password_file.stat().st_uid == os.geteuid()
    assert password_file.read_text().strip() == AWKWARD_PASSWORD
    url = urlsplit(cluster.url_for("rimas"))
    assert url.password is not None
    assert unquote(url.password) == AWKWARD_PASSWORD
    assert not set(url.password) & set("@:/ ?#&'\"\\"), url.password
    assert _query(cluster.url, "SELECT current_user") == [("postgres",)]


@pytest.mark.parametrize("transport", [_unix_url, _tcp_url], ids=["unix-socket", "tcp"])
def test_connecting_without_the_password_is_refused(cluster: EmbeddedPostgres, transport: Callable[..., str]) -> None:
    assert "no password supplied" in _refusal(transport(cluster))
    assert "password authentication failed" in _refusal(transport(cluster, password="wrong"))


@pytest.mark.parametrize("transport", [_unix_url, _tcp_url], ids=["unix-socket", "tcp"])
def test_another_role_cannot_log_in_without_its_password(
    cluster: EmbeddedPostgres, transport: Callable[..., str]
) -> None:
    _execute(cluster.url, "DROP ROLE IF EXISTS intruder; CREATE ROLE intruder LOGIN")
    assert "password" in _refusal(transport(cluster, user="intruder"))
    assert "password" in _refusal(transport(cluster, user="intruder", password="guess"))


# ---------------------------------------------------------------- socket directory


def test_the_socket_directory_is_private(cluster: EmbeddedPostgres) -> None:
    assert cluster.socket_dir == cluster.data_dir
    assert _mode(cluster.socket_dir) == 0o700
    assert cluster.socket_dir.stat().st_uid == _server_uid()
    assert (cluster.socket_dir / f".s.PGSQL.{cluster.port}").is_socket()


def _long_data_dir(base: Path) -> Path:
    data_dir = base / ("long-" * 16) / "data"
    data_dir.parent.mkdir()
    if os.geteuid() == 0:
        data_dir.parent.chmod(0o711)
    assert len(str(data_dir / ".s.PGSQL.5432")) > 108, "the path must be too long for a Unix socket"
    return data_dir


def test_a_long_data_path_gets_a_private_socket_dir_not_the_predictable_one(pg_tmp_path: Path) -> None:
    data_dir = _long_data_dir(pg_tmp_path)
    # Where older versions put the socket: any user could create this folder first.
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    hostile = Path(tempfile.gettempdir()) / f"rimas-pg-{digest}"
    hostile.mkdir(exist_ok=True)
    hostile.chmod(0o777)
    pg = EmbeddedPostgres(data_dir, fast=True)
    try:
        url = pg.start()
        socket_dir = pg.socket_dir
        assert socket_dir != hostile
        assert list(hostile.iterdir()) == []
        assert socket_dir.parent == Path(tempfile.gettempdir())
        assert not socket_dir.is_symlink()
        assert _mode(socket_dir) == 0o700
        assert socket_dir.stat().st_uid == _server_uid()
        assert (socket_dir / ".s.PGSQL.5432").is_socket()
        assert _query(url, "SELECT 1") == [(1,)]

        reuser = EmbeddedPostgres(data_dir, fast=True)  # another process finding it running
        assert reuser.start() == url
        assert reuser.owner is False
        assert _query(reuser.url, "SELECT 1") == [(1,)]
    finally:
        pg.stop()
        hostile.rmdir()
    assert not socket_dir.exists(), "the owner removes the socket dir when the cluster stops"


def test_a_socket_dir_that_is_not_private_is_refused(pg_tmp_path: Path) -> None:
    data_dir = _long_data_dir(pg_tmp_path)
    pg = EmbeddedPostgres(data_dir, fast=True)
    pg.start()
    pid_file = data_dir / "postmaster.pid"
    original = pid_file.read_text()
    decoy = pg_tmp_path / "decoy"
    decoy.symlink_to(pg.socket_dir)
    try:
        lines = original.splitlines()
        lines[4] = str(decoy)  # line 5: the socket directory
        pid_file.write_text("\n".join(lines) + "\n")
        with pytest.raises(EmbeddedPostgresError, match="not private"):
            EmbeddedPostgres(data_dir, fast=True).start()
    finally:
        pid_file.write_text(original)
        pg.stop()


# ---------------------------------------------------------------- permissions outside the data dir


def _modes_above(path: Path) -> dict[Path, int]:
    return {folder: _mode(folder) for folder in path.parents}


def test_parent_folders_keep_their_permissions(pg_tmp_path: Path) -> None:
    parent = pg_tmp_path / "parent"
    parent.mkdir(mode=0o750)
    parent.chmod(0o750)
    account = server_account()
    if account is not None:  # root: the postgres user reaches the parent through its group, as an admin would set
        os.chown(parent, 0, account.gid)
    data_dir = parent / "data"
    before = _modes_above(data_dir)
    with EmbeddedPostgres(data_dir, fast=True) as pg:
        assert _query(pg.url, "SELECT 1") == [(1,)]
        assert _modes_above(data_dir) == before
    assert _mode(parent) == 0o750
    assert _modes_above(data_dir) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")
def test_root_refuses_a_data_dir_the_postgres_user_cannot_reach(pg_tmp_path: Path) -> None:
    parent = pg_tmp_path / "private"
    parent.mkdir(mode=0o750)
    parent.chmod(0o750)
    data_dir = parent / "data"
    before = _modes_above(data_dir)
    with pytest.raises(EmbeddedPostgresError) as caught:
        EmbeddedPostgres(data_dir, fast=True).start()
    message = str(caught.value)
    assert f"no search (x) permission on {parent}" in message
    assert f"chmod o+x {parent}" in message
    assert "RIMAS_DATA_DIR" in message
    assert _modes_above(data_dir) == before
    assert not data_dir.exists()


# ---------------------------------------------------------------- clusters made by older versions


def test_a_trust_cluster_from_an_older_version_is_moved_to_password_auth(pg_tmp_path: Path) -> None:
    data_dir = pg_tmp_path / "data"
    with EmbeddedPostgres(data_dir, fast=True):
        pass
    # What an older RIMAS left: trust rules and no password file.
    hba = data_dir / "pg_hba.conf"
    hba.write_text(TRUST_HBA)  # rewritten in place: still the postgres user's file
    old_password = (data_dir / PASSWORD_FILE).read_text().strip()
    (data_dir / PASSWORD_FILE).unlink()

    pg = EmbeddedPostgres(data_dir, fast=True)
    try:
        url = pg.start()
        new_password = (data_dir / PASSWORD_FILE).read_text().strip()
        assert new_password != old_password
        assert _mode(data_dir / PASSWORD_FILE) == 0o600
        assert _query(url, "SELECT current_user") == [("postgres",)]
        assert "no password supplied" in _refusal(f"postgresql://postgres@/postgres?host={pg.socket_dir}")
        assert all("trust" not in words for words in _hba_rules(hba))
        assert _query(url, "SELECT DISTINCT auth_method FROM pg_hba_file_rules") == [("scram-sha-256",)]
    finally:
        pg.stop()
    with EmbeddedPostgres(data_dir, fast=True) as again:  # the next start needs no migration
        assert _query(again.url, "SELECT 1") == [(1,)]


def test_a_trust_cluster_a_live_older_process_owns_is_switched_only_at_its_next_start(pg_tmp_path: Path) -> None:
    data_dir = pg_tmp_path / "data"
    older = EmbeddedPostgres(data_dir, fast=True)  # stands for the older RIMAS process, alive and owning it
    older.start()
    try:
        (data_dir / "pg_hba.conf").write_text(TRUST_HBA)
        _query(older.url, "SELECT pg_reload_conf()")
        (data_dir / PASSWORD_FILE).unlink()
        trust_url = f"postgresql://postgres@/postgres?host={older.socket_dir}"

        reuser = EmbeddedPostgres(data_dir, fast=True)
        url = reuser.start()
        assert reuser.owner is False
        assert _query(url, "SELECT 1") == [(1,)]
        assert _query(trust_url, "SELECT 1") == [(1,)], "the owner's password-less connections must keep working"
        assert _mode(data_dir / PASSWORD_FILE) == 0o600
    finally:
        older.stop()
    with EmbeddedPostgres(data_dir, fast=True) as pg:
        assert pg.url == url, "the password stored meanwhile is the one set at the switch"
        assert _query(pg.url, "SELECT 1") == [(1,)]
        assert "no password supplied" in _refusal(trust_url)


def test_a_cluster_whose_password_file_is_lost_is_refused_clearly(pg_tmp_path: Path) -> None:
    data_dir = pg_tmp_path / "data"
    with EmbeddedPostgres(data_dir, fast=True):
        pass
    (data_dir / PASSWORD_FILE).unlink()
    with pytest.raises(EmbeddedPostgresError, match=f"{PASSWORD_FILE} is missing.*delete the folder"):
        EmbeddedPostgres(data_dir, fast=True).start()
