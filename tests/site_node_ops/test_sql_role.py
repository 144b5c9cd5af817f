"""SQL source least privilege (issue 12): ``site check`` and ``site start`` inspect the role.

Each test makes its own role in the throwaway PostgreSQL cluster and points a site config at
it. The attack: with a superuser (or a role holding server-file or signal rights) the query
``SELECT pg_read_file(...)`` ran inside the READ ONLY transaction, which does not stop it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedsurv.commands.site_actions import check_site, start_site

from .conftest import ADMIN, ADMIN_PASSWORD, SQL_MAPPING, SQL_QUERY, PgServer, write_config

README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
PASSWORD = "role-test-secret"
FILE_QUERY = SQL_QUERY.replace("donor_type,", "pg_read_file('PG_VERSION') AS donor_type,")
"""The demo query, with one column read from a file on the database server."""


def _config(folder: Path, server: PgServer, user: str, query: str = SQL_QUERY,
            database: str = "registry") -> Path:
    path = write_config(folder, {"kind": "sql", "url": server.url(user, database),
                                 "query": query})
    with path.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in SQL_MAPPING.items()))
    return path


def _role(server: PgServer, name: str, *grants: str) -> str:
    with server.connect() as conn:
        conn.execute(f"DROP ROLE IF EXISTS {name}")
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"GRANT SELECT ON patients TO {name}")
        for grant in grants:
            conn.execute(grant.format(role=name))
    return name


def _check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = check_site(config, connect=False)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_superuser_role_is_refused_with_the_fix(
    tmp_path: Path, postgres: PgServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", ADMIN_PASSWORD)
    code, text = _check(_config(tmp_path, postgres, ADMIN, FILE_QUERY), capsys)
    assert code == 1, text
    assert "Traceback" not in text
    assert f"[FAIL] data: data.url: the database role '{ADMIN}' is a superuser" in text
    assert "CREATE ROLE" in text and "deploy/README.md" in text
    assert "patients, valid" not in text  # the query did not run


@pytest.mark.parametrize(("grants", "expected"), [
    (["GRANT INSERT, UPDATE ON patients TO {role}"],
     ["may write to tables: public.patients (INSERT, UPDATE)",
      "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM"]),
    (["GRANT pg_read_server_files TO {role}"],
     ["may use pg_read_server_files", "REVOKE pg_read_server_files FROM"]),
    (["GRANT pg_signal_backend TO {role}"],
     ["may use pg_signal_backend", "REVOKE pg_signal_backend FROM"]),
    (["GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {role}"],
     ["may call server file or process functions: pg_read_file(text)",
      "REVOKE EXECUTE ON FUNCTION pg_read_file(text) FROM"]),
    (["GRANT EXECUTE ON FUNCTION lo_import(text) TO {role}"],
     ["lo_import(text)"]),
])
def test_role_with_more_than_select_is_refused(
    grants: list[str], expected: list[str], tmp_path: Path, postgres: PgServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    role = _role(postgres, f"risky_{abs(hash(tuple(grants))) % 10**6}", *grants)
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", PASSWORD)
    code, text = _check(_config(tmp_path, postgres, role, FILE_QUERY), capsys)
    assert code == 1, text
    assert "Traceback" not in text
    for fragment in expected:
        assert fragment in text, text


def test_site_start_refuses_a_superuser_before_starting(
    tmp_path: Path, postgres: PgServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fedsurv.protocol.errors import FedsurvError

    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", ADMIN_PASSWORD)
    started: list[str] = []
    with pytest.raises(FedsurvError, match="is a superuser"):
        start_site(_config(tmp_path, postgres, ADMIN), execvp=lambda exe, _: started.append(exe))
    assert started == []


def _runbook_sql() -> list[str]:
    """The ``sql`` block of the runbook's SQL-source section, statement by statement."""
    text = README.read_text()
    section = text[text.index("### SQL source: a read-only database role"):]
    block = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert block, "the runbook's SQL-source section has no sql block"
    lines = [line for line in block.group(1).splitlines() if not line.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_runbook_role_recipe_passes_the_check(
    tmp_path: Path, postgres: PgServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CREATE ROLE recipe of deploy/README.md, run as typed by the database admin."""
    statements = _runbook_sql()
    role = re.search(r"CREATE ROLE (\w+)", statements[0]).group(1)
    password = re.search(r"PASSWORD '([^']+)'", statements[0]).group(1)
    with postgres.connect() as conn:  # the hospital's table, in its own schema
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute("CREATE SCHEMA IF NOT EXISTS cart")
        conn.execute("CREATE TABLE IF NOT EXISTS cart.patients AS TABLE public.patients")
        for statement in statements:
            conn.execute(statement)
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", password)
    query = SQL_QUERY.replace("FROM patients", "FROM cart.patients")
    config = _config(tmp_path, postgres, role, query)
    code, text = _check(config, capsys)
    assert code == 0, text
    assert "[ok  ] data: 8 patients, valid" in text
    started: list[str] = []
    assert start_site(config, execvp=lambda exe, _: started.append(exe)) == 0
    assert started
