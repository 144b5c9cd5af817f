"""Fixtures: the demo site table, site configs, a CA, and a throwaway PostgreSQL server.

The PostgreSQL cluster is created with ``initdb``/``pg_ctl`` (Debian's ``postgresql``
package, installed by ``.ci/install-system-deps.sh``) in a temporary directory, listening on
127.0.0.1 on a free port, owned by the ``postgres`` OS user when the tests run as root
(postgres refuses to run as root). Without PostgreSQL or psycopg the SQL tests are skipped
locally and FAIL under CI (``CI=true``), so a CI machine cannot pass them by accident.
"""

from __future__ import annotations

import csv
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DEMO_CSV = HERE / "demo_site.csv"
MAPPING = {"Pseudonym": "patient_id", "CAR-T infusion": "infusion_date"}
SQL_MAPPING = {"pseudonym": "patient_id", "cart_infusion": "infusion_date"}
ADMIN, ADMIN_PASSWORD = "fedsurv_admin", "admin-secret"
READER, READER_PASSWORD = "fedsurv_reader", "reader-secret"
DATABASE = "registry"

SQL_QUERY = (
    "SELECT pseudonym, cart_infusion, response, crs_grade, icans_grade, agvhd_grade, "
    "relapse_date, death_date, death_cause, last_followup_date, donor_type, age "
    "FROM patients ORDER BY pseudonym"
)


def toml_value(value: object) -> str:
    """A Python value as TOML (str, int, bool, list, dict of str)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        text = str(value)
        return "'''" + text + "'''" if "\n" in text or '"' in text else '"' + text + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"
    raise TypeError(value)


@functools.cache
def _key_material() -> dict[str, bytes]:
    """One CA certificate, node key and audit key, made once per test session."""
    from fedsurv.protocol.pki import create_ca, create_node_keypair
    from fedsurv.protocol.signing import create_signing_key

    with tempfile.TemporaryDirectory() as tmp:
        ca, _ = create_ca(Path(tmp), "fedsurv test CA")
        node, _ = create_node_keypair(Path(tmp), "node_auth_key")
        audit, _ = create_signing_key(Path(tmp), "audit")
        return {"ca.pem": ca.read_bytes(), "keys/node_auth_key": node.read_bytes(),
                "keys/audit_key.pem": audit.read_bytes()}


def _keys(folder: Path) -> None:
    (folder / "keys").mkdir(exist_ok=True)
    for name, data in _key_material().items():
        path = folder / name
        if not path.exists():
            path.write_bytes(data)
            path.chmod(0o600)


def write_config(folder: Path, data: dict, policy: dict | None = None, **top: object) -> Path:
    """Write a site.toml in ``folder`` with key files present; returns its path."""
    _keys(folder)
    lines = [
        f"site_id = {toml_value(top.pop('site_id', 'site-01'))}",
        *(f"{k} = {toml_value(v)}" for k, v in top.items() if k != "coordinator"),
        "[coordinator]",
        f"address = {toml_value(top.get('coordinator', '127.0.0.1:9092'))}",
        'ca_cert = "ca.pem"',
        "[keys]",
        'node_auth_private_key = "keys/node_auth_key"',
        'audit_signing_key = "keys/audit_key.pem"',
        "[data]",
        *(f"{k} = {toml_value(v)}" for k, v in data.items()),
        "[policy]",
        *(f"{k} = {toml_value(v)}" for k, v in (policy or {}).items()),
    ]
    path = folder / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def file_config(tmp_path: Path) -> Path:
    """A site config reading the demo CSV with the column mapping."""
    shutil.copy(DEMO_CSV, tmp_path / "demo_site.csv")
    path = write_config(tmp_path, {"kind": "file", "path": "demo_site.csv"})
    with path.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in MAPPING.items()))
    return path


# -- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    """A running throwaway cluster."""

    host: str
    port: int
    root: Path

    def url(self, user: str = READER, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{user}@{self.host}:{self.port}/{database}"

    def connect(self, user: str = ADMIN, password: str = ADMIN_PASSWORD, database: str = DATABASE):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=user, password=password,
                               dbname=database, autocommit=True)

    def count(self, table: str = "patients") -> int:
        with self.connect() as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL tests cannot run: {reason}. Install with `bash .ci/install-system-deps.sh` "
        "(Debian package postgresql) and `pip install 'psycopg[binary]'`."
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}")


def _load_demo(server: PgServer) -> None:
    with server.connect(database="postgres") as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with server.connect() as conn:
        conn.execute(
            """
            CREATE TABLE patients (
                pseudonym text PRIMARY KEY, cart_infusion date NOT NULL, response text,
                crs_grade integer, icans_grade integer, agvhd_grade integer,
                relapse_date date, death_date date, death_cause text,
                last_followup_date date, donor_type text, age integer)
            """
        )
        with DEMO_CSV.open(newline="") as handle:
            rows = [[cell or None for cell in row] for row in list(csv.reader(handle))[1:]]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO patients VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        conn.execute("CREATE TABLE audit_trail (note text)")
        conn.execute(
            "CREATE FUNCTION bump() RETURNS integer LANGUAGE sql SECURITY DEFINER AS "
            "$$ INSERT INTO audit_trail VALUES ('written'); SELECT 1 $$"
        )
        conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
        conn.execute(f"GRANT CONNECT ON DATABASE {DATABASE} TO {READER}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
        conn.execute(f"GRANT SELECT ON patients TO {READER}")
        conn.execute(f"GRANT EXECUTE ON FUNCTION bump() TO {READER}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A PostgreSQL server on 127.0.0.1 with the demo table and a read-only role."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found (Debian package postgresql is not installed)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the Python driver psycopg is not installed")
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="fedsurv-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' OS user to run the server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    pwfile = root / "pwfile"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    server = PgServer("127.0.0.1", _free_port(), root)
    started = False
    try:
        _run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", ADMIN,
              f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
              "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        options = (f"-h 127.0.0.1 -p {server.port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        _run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
              "-w", "-t", "60", "-o", options, "start"], "pg_ctl start")
        started = True
        _load_demo(server)
        yield server
    finally:
        if started:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def reader_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """The read-only role's password, in the default password variable."""
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", READER_PASSWORD)
    return READER_PASSWORD


@pytest.fixture
def sql_config(tmp_path: Path, postgres: PgServer, reader_password: str) -> Path:
    """A site config reading the demo table through the read-only role."""
    path = write_config(tmp_path, {"kind": "sql", "url": postgres.url(), "query": SQL_QUERY})
    with path.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in SQL_MAPPING.items()))
    return path
