"""Site identity at the site: the coordinator names a site by its enrolled name; the site
checks that name against its own configuration before anything else is decided.

The coordinator's query carries ``site-name``: the name this node's key is enrolled under on
the coordinator's allow-list (:mod:`fedsurv.coordinator.node_names`). A site configured under
another ``site_id`` refuses with ``site_name_mismatch`` (the ClientApp logs the refusal in the
site's audit log like any other): results, progress and audit logs must never carry a site under
two names, and a node that is not what its site IT configured does not release anything.
A query without ``site-name`` (a coordinator without a roster) is not checked here; the
coordinator then names sites as they report themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedsurv.site_node import answer

SITE_NAME_FIELD = "site-name"
REASON_CODE = "site_name_mismatch"


def name_mismatch(record: Mapping[str, Any], node_config: Mapping[str, Any]) -> \
        answer.Decision | None:
    """A refusal when the query names this site otherwise than its ``site-id``, else None."""
    enrolled = record.get(SITE_NAME_FIELD)
    if enrolled is None:
        return None
    configured = str(node_config.get("site-id", "")).strip()
    if str(enrolled) == configured:
        return None
    return answer.Decision.refuse(
        REASON_CODE,
        f"the coordinator knows this node's key as site {str(enrolled)[:64]!r}, but this site "
        "is configured under another site_id: ask the coordinator to enrol the node key under "
        "the site_id in site.toml (or fix site_id); nothing was computed",
    )
