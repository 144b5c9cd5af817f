"""Refuse any SQL text that is not one read-only query, before it reaches the database.

This is the first of three locks on a site's SQL source (see :mod:`fedsurv.site_node.sources`): the
query must be a single ``SELECT`` or ``WITH ... SELECT`` statement with no data-modifying or
DDL keyword anywhere (string literals, quoted identifiers and comments aside). The second lock
is a READ ONLY transaction that is always rolled back, the third the database role, which
:func:`role_problems` inspects (PostgreSQL) before any query runs: a READ ONLY transaction does
not stop ``pg_read_file`` or ``pg_terminate_backend``, only the role's rights do.
"""

from __future__ import annotations

import re

from fedsurv.protocol.errors import FedsurvError

FORBIDDEN = frozenset({
    "insert", "update", "delete", "merge", "upsert", "drop", "create", "alter", "truncate",
    "grant", "revoke", "copy", "call", "do", "execute", "exec", "prepare", "deallocate",
    "lock", "vacuum", "cluster", "reindex", "refresh", "set", "reset", "begin", "commit",
    "rollback", "savepoint", "listen", "notify", "unlisten", "load", "into", "attach",
    "detach", "pragma", "discard", "checkpoint", "rename",
})
"""Keywords refused anywhere in the query (``into`` catches ``SELECT ... INTO new_table``;
``update`` also refuses ``FOR UPDATE`` row locks)."""

_TOKENS = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?\$(?P=tag)?\$)
    | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*')
    | (?P<string>[BbXxNnUu]?'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<semicolon>;)
    | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNTERMINATED = {"'": "string literal", '"': "quoted identifier", "$": "dollar-quoted string",
                 "`": "quoted identifier", "[": "quoted identifier"}


class UnsafeQueryError(FedsurvError):
    """A site's SQL query that could write, or holds more than one statement."""


def check_read_only_query(query: str, key: str = "data.query") -> str:
    """Return ``query`` without trailing semicolons if it is one read-only SELECT, else raise.

    Args:
        query: the SQL text from the site config.
        key: the config key named in messages.
    """
    words: list[str] = []
    ended = False  # a semicolon closed the first statement
    for match in _TOKENS.finditer(query):
        kind, text = match.lastgroup, match.group()
        if kind == "comment":
            continue
        if kind == "semicolon":
            ended = bool(words)
            continue
        if kind == "other" and (text in _UNTERMINATED or query.startswith("/*", match.start())):
            what = _UNTERMINATED.get(text, "comment")
            raise UnsafeQueryError(f"{key}: unterminated {what}; the query was not run")
        if ended:
            raise UnsafeQueryError(
                f"{key}: holds more than one statement; give a single SELECT (the query was "
                "not run)"
            )
        if kind == "word":
            words.append(text.lower())
    if not words:
        raise UnsafeQueryError(f"{key}: the query is empty")
    if words[0] not in ("select", "with"):
        raise UnsafeQueryError(
            f"{key}: must be a single SELECT (or WITH ... SELECT) query, not "
            f"'{words[0].upper()}'; the site reads data and never changes it (the query was not "
            "run)"
        )
    bad = sorted({w for w in words if w in FORBIDDEN})
    if bad:
        listed = ", ".join(w.upper() for w in bad)
        raise UnsafeQueryError(
            f"{key}: contains {listed}, which may change data or the session; the site only "
            "runs read-only SELECT queries (the query was not run)"
        )
    return query.strip().rstrip(";").strip()



# -- the role lock (PostgreSQL) ---------------------------------------------------------------

RUNBOOK = "deploy/README.md, section 'SQL source: a read-only database role'"
SERVER_ROLES = (
    "pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
    "pg_signal_backend", "pg_write_all_data", "pg_checkpoint",
)
"""Predefined roles that reach the server's files, programs or other sessions, or write."""
SERVER_FUNCTIONS = (
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import",
    "lo_export", "pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
    "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "pg_switch_wal",
    "pg_create_restore_point", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "pg_file_sync", "pg_logdir_ls", "dblink_connect_u",
)
"""Server-side file and process functions a site's role must not be able to call (by default
only superusers may). ``pg_terminate_backend``/``pg_cancel_backend`` are callable by everyone
but reach only the role's own sessions unless it holds ``pg_signal_backend`` (checked above)."""
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

_ROLE_SQL = (
    "SELECT current_user::text, rolsuper, rolcreaterole FROM pg_roles "
    "WHERE rolname = current_user"
)
_WRITE_SQL = f"""
SELECT n.nspname::text, c.relname::text, string_agg(p.priv, ', ' ORDER BY p.ord)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN (VALUES {", ".join(f"({k}, '{w}')" for k, w in enumerate(WRITES))}) AS p(ord, priv)
WHERE c.relkind IN ('r', 'p', 'v', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND (has_table_privilege(c.oid, p.priv)
       OR (p.priv IN ('INSERT', 'UPDATE') AND has_any_column_privilege(c.oid, p.priv)))
GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 20
"""
_MEMBER_SQL = (
    "SELECT rolname::text FROM pg_roles WHERE rolname IN ("
    + ", ".join(f"'{r}'" for r in SERVER_ROLES)
    + ") AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY 1"
)
_FUNCTION_SQL = (
    "SELECT DISTINCT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname IN ("
    + ", ".join(f"'{f}'" for f in SERVER_FUNCTIONS)
    + ") AND has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1"
)


class UnsafeRoleError(FedsurvError):
    """The database role may do more than read: refused before any query runs."""


def role_problems(cursor) -> tuple[str, list[str]]:  # cursor: a DBAPI cursor (PostgreSQL)
    """(role name, what the role may do beyond reading, each with its fix); [] = read-only.

    Checks: superuser; CREATEROLE; INSERT/UPDATE/DELETE/TRUNCATE on any table or view (also
    through ownership or column grants); membership in :data:`SERVER_ROLES`; EXECUTE on
    :data:`SERVER_FUNCTIONS`.
    """
    def rows(sql: str) -> list[tuple]:
        cursor.execute(sql)
        return list(cursor.fetchall())

    role, superuser, createrole = rows(_ROLE_SQL)[0]
    if superuser:
        return role, [
            "is a superuser: it can read server files, run programs and stop other sessions "
            "whatever the query says (a READ ONLY transaction does not stop that); connect as "
            f"a role that may only SELECT the study table (CREATE ROLE ... LOGIN; GRANT "
            f"SELECT ON ... : see {RUNBOOK})"
        ]
    problems: list[str] = []
    if createrole:
        problems.append(f"may create roles (CREATEROLE); fix: ALTER ROLE {role} NOCREATEROLE")
    writable = rows(_WRITE_SQL)
    if writable:
        listed = ", ".join(f"{schema}.{table} ({privs})" for schema, table, privs in writable)
        schemas = ", ".join(sorted({schema for schema, _, _ in writable}))
        problems.append(
            f"may write to tables: {listed}; fix: REVOKE {', '.join(WRITES)} ON ALL TABLES IN "
            f"SCHEMA {schemas} FROM {role} (and give tables it owns to another owner: ALTER "
            "TABLE ... OWNER TO ...)")
    members = [r for (r,) in rows(_MEMBER_SQL)]
    if members:
        revokes = "; ".join(f"REVOKE {r} FROM {role}" for r in members)
        problems.append(f"may use {', '.join(members)} (server files, programs or other "
                        f"sessions); fix: {revokes}")
    functions = [f for (f,) in rows(_FUNCTION_SQL)]
    if functions:
        revokes = "; ".join(f"REVOKE EXECUTE ON FUNCTION {f} FROM {role}" for f in functions)
        problems.append(f"may call server file or process functions: {', '.join(functions)}; "
                        f"fix: {revokes} (and FROM PUBLIC where it was granted to everyone)")
    return role, problems


def check_role(cursor, key: str = "data.url") -> str:
    """The role's name if it may only read; else raise :class:`UnsafeRoleError` with every
    problem and its fix (nothing has been read)."""
    role, problems = role_problems(cursor)
    if not problems:
        return role
    if len(problems) == 1:
        detail = problems[0]
    else:
        detail = "has more rights than reading: " + " | ".join(problems)
    raise UnsafeRoleError(
        f"{key}: the database role '{role}' {detail}. The site reads with a role that may "
        f"only SELECT ({RUNBOOK}); nothing was read"
    )
