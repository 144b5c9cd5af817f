"""Read the site's table from its configured source, map local column names, validate.

* ``kind = "file"``: a CSV, XLSX or Parquet file, read by :mod:`fedsurv.site_node.data`.
* ``kind = "sql"``: one query through SQLAlchemy, under three locks: the query text must be a
  single read-only ``SELECT`` (:mod:`fedsurv.site_node.sql_guard`, checked before connecting); it
  runs
  in a READ ONLY transaction that is always rolled back (PostgreSQL: the session also starts
  with ``default_transaction_read_only=on``); and the database role must be read-only:
  on PostgreSQL it is inspected before the query runs and refused when it is a superuser,
  may write to a table or may call server file or process functions
  (:func:`fedsurv.site_node.sql_guard.check_role`; the runbook's ``CREATE ROLE`` recipe passes).

Both kinds rename columns by the config's ``columns`` mapping (local name -> contract name,
matched ignoring case and surrounding spaces) before the data contract is checked, so findings
name contract columns and the rows as the source numbers them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from fedsurv.protocol.errors import FedsurvError
from fedsurv.site_node.config import FileSource, SiteConfig, SqlSource, load_site_config
from fedsurv.site_node.data import note_encoding
from fedsurv.site_node.data.errors import DataValidationError, Finding
from fedsurv.site_node.data.readers import RawTable, in_chunks, read_raw
from fedsurv.site_node.data.validate import validate
from fedsurv.site_node.sql_guard import check_read_only_query, check_role

SQL_ROWS = "Row numbers count the query's result rows from 1."
SQL_NAME = "data.query"
"""How findings name a SQL source."""


class SourceError(FedsurvError):
    """The data source cannot be reached or read (connection, permissions, SQL errors)."""


def read_source(config: SiteConfig) -> pd.DataFrame:
    """The site's validated, typed frame (docs/design.md §3); raises on any problem."""
    frame, findings, row_note = check_source(config)
    if findings or frame is None:
        raise DataValidationError(findings, row_note)
    return frame


def read_configured_source(config_file: Path | str) -> pd.DataFrame:
    """:func:`read_source` for the site config at ``config_file`` (for the node's ClientApp,
    whose node config carries ``site-config``): file or SQL source, column mapping applied."""
    return read_source(load_site_config(config_file))


def check_source(config: SiteConfig) -> tuple[pd.DataFrame | None, list[Finding], str]:
    """(frame or None, findings, how rows are numbered) for the configured source."""
    raw = read_raw_source(config)
    raw, mapping_findings = apply_column_mapping(raw, config.columns)
    frame, findings = validate(raw)
    findings = mapping_findings + findings
    return (None if findings else note_encoding(frame, raw)), findings, raw.row_note


def read_raw_source(config: SiteConfig) -> RawTable:
    """The source's header and cells, before mapping and validation."""
    source = config.data
    if isinstance(source, FileSource):
        return read_raw(Path(source.path))
    assert isinstance(source, SqlSource)
    return read_sql(source)


def apply_column_mapping(
    raw: RawTable, columns: Mapping[str, str]
) -> tuple[RawTable, list[Finding]]:
    """Rename header names by ``columns``; a mapped local column that is absent is a finding."""
    if not columns:
        return raw, []
    wanted = {local.strip().lower(): target for local, target in columns.items()}
    header = [wanted.get(h.strip().lower(), h) for h in raw.header]
    present = {h.strip().lower() for h in raw.header}
    findings = [
        Finding(
            file=raw.file,
            column=target,
            rule="mapped_column",
            message=f"column '{local}' named in the site config's columns mapping "
            f"(-> {target}) is not in the source; columns found: {', '.join(raw.header)}",
        )
        for local, target in columns.items()
        if local.strip().lower() not in present
    ]
    return replace(raw, header=header), findings


def sql_password(source: SqlSource, environ: Mapping[str, str] | None = None) -> str | None:
    """The database password from ``source.password_env`` (None when unset: peer/.pgpass)."""
    environ = os.environ if environ is None else environ
    return environ.get(source.password_env) or None


def _engine(source: SqlSource):  # -> sqlalchemy.Engine
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(source.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    password = sql_password(source)
    if password is not None:
        url = url.set(password=password)
    connect_args: dict = {}
    if url.get_backend_name() == "postgresql":
        timeout_ms = source.timeout_seconds * 1000
        connect_args = {
            "connect_timeout": min(source.timeout_seconds, 30),
            "options": f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
            "application_name": "fedsurv-site",
        }
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _begin_read_only(connection, backend: str) -> None:
    """Make the connection's transaction read-only, and verify it where the database can say."""
    if backend == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        state = connection.exec_driver_sql("SHOW transaction_read_only").scalar()
        if str(state).lower() != "on":
            raise SourceError("data.url: the database did not start a read-only transaction")
    elif backend == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")
    elif backend in ("mysql", "mariadb"):
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    # other backends: the statement check and the read-only role; the transaction is always
    # rolled back.


def read_sql(source: SqlSource) -> RawTable:
    """Run the source's query read-only and return its result as a raw table."""
    query = check_read_only_query(source.query)
    header, rows = _with_read_only_connection(source, lambda c: _fetch(c, query))
    frame = pd.DataFrame.from_records(rows, columns=range(len(header)))
    numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    return RawTable(SQL_NAME, header, in_chunks(frame, numbers), SQL_ROWS)


def check_source_role(config: SiteConfig) -> str | None:
    """For a SQL source: connect and inspect the role (nothing is read); returns what was
    checked, or None when the backend cannot say (only PostgreSQL is inspected). Raises
    :class:`fedsurv.site_node.sql_guard.UnsafeRoleError` for a role that may do more than read."""
    source = config.data
    if not isinstance(source, SqlSource):
        return None
    return _with_read_only_connection(source, lambda _: None, described=True)


def _with_read_only_connection(source: SqlSource, work, described: bool = False):
    """Open the source's database read-only, check the role (PostgreSQL), run ``work``."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = _engine(source)
    except (SQLAlchemyError, ImportError) as exc:
        raise SourceError(f"data.url: cannot use this database URL: {_first_line(exc)}") from None
    where = engine.url.render_as_string(hide_password=True)
    backend = engine.url.get_backend_name()
    try:
        with engine.connect() as connection:
            try:
                _begin_read_only(connection, backend)
                role = _check_role(connection) if backend == "postgresql" else None
                result = work(connection)
            finally:
                connection.rollback()
    except (SQLAlchemyError, _dbapi_error(engine)) as exc:
        detail = _first_line(getattr(exc, "orig", None) or exc)
        raise SourceError(f"data.query: reading from {where} failed: {detail}"
                          + _password_hint(detail, source)) from None
    finally:
        engine.dispose()
    if not described:
        return result
    if role is None:
        return None
    return (f"role '{role}' may only read (not a superuser, no table writes, no server file "
            "or process functions)")


def _password_hint(detail: str, source: SqlSource) -> str:
    """What to do when the database asked for a password (never the password itself)."""
    variable = source.password_env
    if "no password supplied" in detail:
        return (f" (the database asks for a password and the environment variable {variable}"
                " (data.password_env) is not set for this user: set it in the node's "
                "environment, or use peer authentication or a .pgpass file)")
    if "password authentication failed" in detail:
        where = "from " + variable if sql_password(source) is not None else "(none was sent)"
        return f" (the password {where} was refused: check {variable} and the role's password)"
    return ""


def _check_role(connection) -> str:
    cursor = connection.connection.cursor()
    try:
        return check_role(cursor)
    finally:
        cursor.close()


def _dbapi_error(engine) -> type[Exception]:
    """The driver's base error class (raised by the raw cursor of :func:`_fetch`)."""
    dbapi = getattr(engine.dialect, "loaded_dbapi", None) or engine.dialect.dbapi
    return getattr(dbapi, "Error", Exception)


def _fetch(connection, query: str) -> tuple[list[str], list[tuple]]:
    """Run ``query`` on the DBAPI cursor without parameters, so ``%`` and ``:x`` stay SQL."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(query)
        if cursor.description is None:
            raise SourceError("data.query: the query returned no result table")
        header = [str(column[0]) for column in cursor.description]
        return header, [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
