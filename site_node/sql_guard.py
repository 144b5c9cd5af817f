"""Refuse any SQL text that is not one read-only query, before it reaches the database.

This is the first of three locks on a site's SQL source (see :mod:`site_node.sources`): the
query must be a single ``SELECT`` or ``WITH ... SELECT`` statement with no data-modifying or
DDL keyword anywhere (string literals, quoted identifiers and comments aside). The second lock
is a READ ONLY transaction that is always rolled back, the third the database role.
"""

from __future__ import annotations

import re

from protocol.errors import FedsurvError

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

