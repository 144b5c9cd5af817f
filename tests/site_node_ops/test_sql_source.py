"""The SQL data source against a real PostgreSQL server, through a read-only role."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fedsurv.site_node.config import SiteConfigError, load_site_config
from fedsurv.site_node.sources import SourceError, read_source
from fedsurv.site_node.sql_guard import UnsafeQueryError, check_read_only_query

from .conftest import (
    READER,
    READER_PASSWORD,
    SQL_MAPPING,
    SQL_QUERY,
    PgServer,
    write_config,
)

WRITING_QUERIES = {
    "delete": "DELETE FROM patients",
    "insert": "INSERT INTO patients (pseudonym, cart_infusion) VALUES ('X', '2021-01-01')",
    "update": "UPDATE patients SET crs_grade = 5",
    "drop": "DROP TABLE patients",
    "select_then_delete": "SELECT * FROM patients; DELETE FROM patients",
    "cte_delete": "WITH gone AS (DELETE FROM patients RETURNING *) SELECT * FROM gone",
    "select_into": "SELECT * INTO copy_of_patients FROM patients",
    "truncate": "truncate patients",
    "commented_delete": "/* report */ SELECT 1; -- harmless?\n DELETE FROM patients",
}


def _sql_config(folder: Path, server: PgServer, query: str) -> Path:
    path = write_config(folder, {"kind": "sql", "url": server.url(), "query": query})
    with path.open("a") as handle:
        handle.write("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in SQL_MAPPING.items()))
    return path


def test_sql_source_reads_rows_identical_to_csv(file_config: Path, sql_config: Path) -> None:
    from_csv = read_source(load_site_config(file_config))
    from_sql = read_source(load_site_config(sql_config))
    assert len(from_sql) == 8
    pd.testing.assert_frame_equal(from_sql, from_csv)


@pytest.mark.parametrize("name", sorted(WRITING_QUERIES))
def test_writing_query_is_refused_and_table_unchanged(
    name: str, tmp_path: Path, postgres: PgServer, reader_password: str
) -> None:
    before = postgres.count()
    config = load_site_config(_sql_config(tmp_path, postgres, WRITING_QUERIES[name]))
    with pytest.raises(UnsafeQueryError, match=r"data\.query") as caught:
        read_source(config)
    assert "not run" in str(caught.value)
    assert postgres.count() == before
    with postgres.connect() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"patients", "copy_of_patients"} & tables == {"patients"}


def test_write_hidden_in_a_function_is_stopped_by_the_read_only_transaction(
    tmp_path: Path, postgres: PgServer, reader_password: str
) -> None:
    """Second lock: a SELECT that calls a writing (SECURITY DEFINER) function."""
    config = load_site_config(_sql_config(tmp_path, postgres, "SELECT bump() AS x"))
    with pytest.raises(SourceError, match="read-only transaction"):
        read_source(config)
    assert postgres.count("audit_trail") == 0


def test_reader_role_cannot_write_even_outside_fedsurv(postgres: PgServer) -> None:
    """Third lock: the database role itself holds SELECT only."""
    import psycopg

    with (
        postgres.connect(user=READER, password=READER_PASSWORD) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("DELETE FROM patients")
    assert postgres.count() == 8


def test_password_comes_from_the_environment(
    tmp_path: Path, postgres: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_site_config(_sql_config(tmp_path, postgres, SQL_QUERY))
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", "wrong")
    with pytest.raises(SourceError, match="password authentication failed") as caught:
        read_source(config)
    assert "wrong" not in str(caught.value)
    assert "the password from FEDSURV_SITE_DB_PASSWORD was refused" in str(caught.value)
    monkeypatch.delenv("FEDSURV_SITE_DB_PASSWORD")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))
    with pytest.raises(SourceError, match="no password supplied") as caught:
        read_source(config)
    assert ("the environment variable FEDSURV_SITE_DB_PASSWORD (data.password_env) is not set"
            in str(caught.value))
    monkeypatch.setenv("FEDSURV_SITE_DB_PASSWORD", READER_PASSWORD)
    assert len(read_source(config)) == 8


def test_sql_error_is_reported_with_the_key(
    tmp_path: Path, postgres: PgServer, reader_password: str
) -> None:
    config = load_site_config(_sql_config(tmp_path, postgres, "SELECT * FROM no_such_table"))
    with pytest.raises(SourceError, match=r"data.query: reading from .*no_such_table"):
        read_source(config)


def test_percent_signs_in_query_are_sql_not_parameters(
    tmp_path: Path, postgres: PgServer, reader_password: str
) -> None:
    query = SQL_QUERY.replace("ORDER BY", "WHERE donor_type LIKE 'M%' ORDER BY")
    frame = read_source(load_site_config(_sql_config(tmp_path, postgres, query)))
    assert set(frame["donor_type"]) == {"MSD", "MUD"}


def test_url_with_password_is_refused(tmp_path: Path, postgres: PgServer) -> None:
    url = f"postgresql+psycopg://{READER}:{READER_PASSWORD}@127.0.0.1:{postgres.port}/registry"
    path = write_config(tmp_path, {"kind": "sql", "url": url, "query": SQL_QUERY})
    with pytest.raises(SiteConfigError, match=r"data\.url: must not contain a password") as e:
        load_site_config(path)
    assert READER_PASSWORD not in str(e.value)


@pytest.mark.parametrize("query", [
    "SELECT 1", "select a from t;", "WITH x AS (SELECT 1) SELECT * FROM x",
    "SELECT 'delete; drop' AS \"update\"", "SELECT $$ ; DELETE $$", "SELECT 1 -- DELETE",
    "SELECT replace(a, 'x', 'y') FROM t",
])
def test_guard_accepts_plain_selects(query: str) -> None:
    assert check_read_only_query(query)


@pytest.mark.parametrize("query", [
    *WRITING_QUERIES.values(), "", "  ;  ", "SELECT 'unterminated", "SELECT 1 /* open",
    "SELECT * FROM t FOR UPDATE", "COPY t TO '/tmp/x'", "SELECT 1; SELECT 2",
    "EXPLAIN ANALYZE DELETE FROM t", "CALL p()", "SET ROLE admin", "select 1 into x",
    "SELECT E'\\''; DELETE FROM t; SELECT ''", "MERGE INTO t USING s ON true WHEN MATCHED "
    "THEN DELETE",
])
def test_guard_refuses_everything_else(query: str) -> None:
    with pytest.raises(UnsafeQueryError):
        check_read_only_query(query)
