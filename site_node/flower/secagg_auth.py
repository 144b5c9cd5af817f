"""Authenticated SecAgg+ at the site: checks around Flower's ``secaggplus_mod`` (issue 11).

Flower's SecAgg+ (Bell et al. 2020, after Bonawitz et al. 2017) trusts the server to relay
public keys faithfully and to ask for the right shares at unmasking. A coordinator that cheats
can then sit in the middle of the key agreement, add participants of its own, or ask one
site's mask seed *and* secret key and strip every mask from its vector. These checks, run by
:func:`fedsurv.site_node.flower.guard.round_guard_mod` on every tally and Cox round, refuse that:

=========================== ===================================================================
reason code                 refused when
=========================== ===================================================================
``unsafe_threshold``        ``setup``: the reconstruction threshold ``t`` is at most half the
                            shares (``2t <= share_num``): two disjoint groups of sites could
                            then each hand over ``t`` shares of one secret (see below)
``key_signature_missing``   ``share_keys``: a participant's signed key statement is absent,
                            or fewer/more statements than announced participants (a
                            coordinator that strips the statements is refused)
``participant_not_on_roster`` ``share_keys``: a participant names no enrolled site (a sybil)
``key_signature_invalid``   ``share_keys``: a statement does not verify under the roster key
                            of the name it claims, for these keys, this request and attempt,
                            or a neighbour's relayed keys are not the ones it signed
``duplicate_participant``   ``share_keys``: one enrolled name on two node ids
``unmask_overlap``          ``unmask``: a node is listed both active and dropped, or this
                            site (which sent its masked vector) is listed as dropped
``unmask_not_neighbour``    ``unmask``: a listed node is not one of this site's neighbours (as
                            fixed at ``share_keys``)
``unmask_repeated``         ``unmask``: a second unmask request in one attempt
``site_misconfigured``      the node config names a roster that cannot be read, or no key
=========================== ===================================================================

The statement signed at ``setup`` is :func:`fedsurv.protocol.roster.key_statement` (request id,
attempt,
node id, enrolled name, both public keys); the coordinator relays them in the ``share_keys``
message (:data:`fedsurv.protocol.roster.KEYSIGS_RECORD`). Node config: ``roster`` (the study roster
file) and ``audit-key`` (the site's enrolled Ed25519 key; ``signing-key`` when another file);
without ``roster`` the key checks are skipped (a warning) and the unmask checks still hold.

Why no signed consistency round (Bonawitz et al. 2017, malicious server, round "ConsistencyCheck"):
that round stops a server that tells different sites different dropped sets. Here each site
answers one unmask request per attempt (``unmask_repeated``, and Flower's stage machine), never
for a node both active and dropped (``unmask_overlap``), and only when ``2t > share_num``
(``unsafe_threshold``). The holders of one site's shares are its ``share_num`` neighbours; to
rebuild both its mask seed and its secret key the coordinator would need ``t`` holders that
call it active and ``t`` *other* holders that call it dropped, ``2t > share_num`` of them:
impossible. ``test_split_view_needs_a_threshold_of_at_most_half`` (tests/security) runs that
attack: with threshold 0.5 it recovered the target's vector before this check and is refused
now; with the default threshold it recovers nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.roster import (
    KEYSIG_RECORD,
    KEYSIGS_RECORD,
    RosterError,
    StudyRoster,
    key_digest,
    key_statement,
    sign_statement,
    statement_of_digests,
    statement_valid,
)
from fedsurv.site_node.flower.state import RoundRefused
from flwr.app import ConfigRecord, Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

ROSTER_KEY = "roster"
SIGNING_KEY = "signing-key"
"""The site's enrolled Ed25519 key when it differs from ``audit-key`` (the default)."""
logger = logging.getLogger("fedsurv.site")


@dataclass(frozen=True)
class SiteIdentity:
    """This site's enrolled name, its signing key and the study roster it holds."""

    name: str
    key: Ed25519PrivateKey
    roster: StudyRoster

    @classmethod
    def from_node_config(cls, node_config: dict) -> SiteIdentity | None:
        """``None`` (with a warning) when the node config names no roster."""
        path = str(node_config.get(ROSTER_KEY, "") or "").strip()
        if not path:
            logger.warning("no study roster configured (node config 'roster'): SecAgg+ keys "
                           "of other sites are not authenticated")
            return None
        from fedsurv.protocol.signing import load_signing_key

        name = str(node_config.get("site-id", "")).strip()
        key_path = str(node_config.get(SIGNING_KEY, "") or node_config.get("audit-key", "")
                       or "").strip()
        try:
            roster = StudyRoster.load(path)
            if not key_path:
                raise RosterError("node config names a roster but no 'audit-key' (or "
                                  "'signing-key') to sign with")
            key = load_signing_key(key_path)
        except FedsurvError as exc:
            raise RoundRefused("site_misconfigured", str(exc)) from None
        enrolled = roster.sites.get(name)
        from fedsurv.protocol.signing import key_id

        if enrolled is None or key_id(enrolled) != key_id(key):
            raise RoundRefused("site_misconfigured", f"this site's key is not enrolled as "
                                                     f"{name!r} in its study roster")
        return cls(name, key, roster)


def check_threshold(configs: ConfigRecord) -> None:
    """``setup``: ``2 * threshold > share_num`` (``unsafe_threshold``)."""
    threshold = int(cast(int, configs[Key.THRESHOLD]))
    shares = int(cast(int, configs[Key.SHARE_NUMBER]))
    if 2 * threshold <= shares:
        raise RoundRefused("unsafe_threshold", f"reconstruction threshold {threshold} of "
                                               f"{shares} shares: at most half, refusing")


def sign_setup_reply(reply: Message, identity: SiteIdentity, request_id: str, attempt: str,
                     node_id: int) -> Message:
    """Add this site's signed key statement to Flower's ``setup`` reply."""
    if reply.has_error():
        return reply
    configs = reply.content.config_records[RECORD_KEY_CONFIGS]
    pk1, pk2 = cast(bytes, configs[Key.PUBLIC_KEY_1]), cast(bytes, configs[Key.PUBLIC_KEY_2])
    statement = key_statement(request_id, attempt, node_id, identity.name, pk1, pk2)
    reply.content.config_records[KEYSIG_RECORD] = ConfigRecord({
        "name": identity.name, "sig": sign_statement(identity.key, statement)})
    return reply


def verify_share_keys(msg: Message, configs: ConfigRecord, identity: SiteIdentity | None,
                      request_id: str, attempt: str, node_id: int,
                      sample_num: int) -> dict[int, str]:
    """``share_keys``: every participant's statement against the roster; node id -> name.

    The coordinator relays the statements of all ``sample_num`` participants (with their
    keys' digests): each must verify under the roster key of a distinct enrolled name, and
    each neighbour's statement must be for the keys Flower relays for it. Without a roster
    (``identity`` None) only the neighbours are known, as ``node-<id>``.
    """
    keys = {int(k): cast(list[bytes], v) for k, v in configs.items() if str(k).isdigit()}
    if node_id not in keys:
        raise RoundRefused("protocol_mismatch", "share_keys without this site's own keys")
    if identity is None:
        return {nid: f"node-{nid}" for nid in keys}
    sigs = msg.content.config_records.get(KEYSIGS_RECORD)
    relayed = sorted({int(str(k).split(".")[0]) for k in (sigs or {}) if str(k)[:1].isdigit()})
    missing = sorted(set(keys) - set(relayed))
    if sigs is None or missing:
        raise RoundRefused("key_signature_missing", f"no signed key statement for "
                                                    f"{len(missing) or len(keys)} neighbour(s)")
    if len(relayed) != sample_num:
        raise RoundRefused("key_signature_missing", f"{len(relayed)} signed key statement(s) "
                                                    f"relayed for {sample_num} participants")
    names: dict[int, str] = {}
    for nid in relayed:
        name, sig = sigs.get(f"{nid}.name"), sigs.get(f"{nid}.sig")
        pk1, pk2 = sigs.get(f"{nid}.pk1"), sigs.get(f"{nid}.pk2")
        if not (isinstance(name, str) and isinstance(sig, bytes) and isinstance(pk1, str)
                and isinstance(pk2, str)):
            raise RoundRefused("key_signature_missing", f"incomplete key statement for node "
                                                        f"{nid}")
        enrolled = identity.roster.sites.get(name)
        if enrolled is None:
            raise RoundRefused("participant_not_on_roster", f"node {nid} claims {name!r}, "
                                                            "which is not on the study roster")
        if nid in keys and (pk1, pk2) != (key_digest(keys[nid][0]), key_digest(keys[nid][1])):
            raise RoundRefused("key_signature_invalid", f"the keys relayed for node {nid} "
                                                        f"({name!r}) are not the ones it signed")
        statement = statement_of_digests(request_id, attempt, nid, name, pk1, pk2)
        if not statement_valid(enrolled, statement, sig):
            raise RoundRefused("key_signature_invalid", f"the key statement of node {nid} "
                                                        f"({name!r}) does not verify")
        if nid == node_id and name != identity.name:
            raise RoundRefused("key_signature_invalid", "this site's keys relayed under "
                                                        f"another name ({name!r})")
        names[nid] = name
    if len(set(names.values())) != len(names):
        raise RoundRefused("duplicate_participant", "one enrolled site on two node ids")
    return names


def check_unmask(configs: ConfigRecord, neighbours: list[int], node_id: int,
                 already_unmasked: bool) -> None:
    """``unmask``: disjoint lists, subsets of the neighbours, self active, once per attempt."""
    if already_unmasked:
        raise RoundRefused("unmask_repeated", "this site already answered the unmask request "
                                              "of this attempt")
    active = [int(n) for n in cast(list[int], configs[Key.ACTIVE_NODE_ID_LIST])]
    dead = [int(n) for n in cast(list[int], configs.get(Key.DEAD_NODE_ID_LIST, []))]
    both = set(active) & set(dead)
    if both or node_id in dead or len(set(active)) != len(active) \
            or len(set(dead)) != len(dead):
        raise RoundRefused("unmask_overlap", f"{len(both) or 1} node(s) listed as both active "
                                             "and dropped (or repeated, or this site dropped)")
    outside = (set(active) | set(dead)) - set(neighbours)
    if outside:
        raise RoundRefused("unmask_not_neighbour", f"{len(outside)} listed node(s) are not "
                                                   "among this site's neighbours")


def node_id_of(context: Context, msg: Message) -> int:
    return int(msg.metadata.dst_node_id or context.node_id)
