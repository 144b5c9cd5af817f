"""A cheating coordinator for the malicious-coordinator suite: a Grid that deviates.

:class:`CheatingGrid` sits between fedsurv's honest coordinator code (``run_request``, the
``RoundGrid`` and Flower's ``SecAggPlusWorkflow``) and the real ClientApps of the in-process
federation. An :class:`Attack` rewrites what the coordinator sends and reads (and may edit)
what comes back, like an operator who patched the ServerApp or the SuperLink. Every attack
keeps what it would need to break privacy, and :meth:`Attack.recovered` tries it: the tests
assert the recovery fails (and that it succeeds against a site without the defence).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fedsurv.harness.inprocess import InProcessGrid
from fedsurv.protocol.roster import KEYSIGS_RECORD
from fedsurv.protocol.secure_encoding import MODULUS_RANGE
from fedsurv.protocol.secure_prg import secure_pseudo_rand_gen as pseudo_rand_gen
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.crypto.shamir import combine_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    decrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.common.secure_aggregation.secaggplus_utils import share_keys_plaintext_separate
from flwr.serverapp import Grid
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)


def stage_of(messages: Sequence[Message]) -> str:
    for message in messages:
        records = message.content.config_records
        if RECORD_KEY_CONFIGS in records and Key.STAGE in records[RECORD_KEY_CONFIGS]:
            return str(records[RECORD_KEY_CONFIGS][Key.STAGE])
    return "query" if messages and messages[0].metadata.message_type == "query" else ""


def configs(message: Message) -> ConfigRecord:
    return message.content.config_records[RECORD_KEY_CONFIGS]


class Attack:
    """Hooks: rewrite outgoing messages and incoming replies per stage."""

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        return messages

    def incoming(self, stage: str, replies: list[Message]) -> list[Message]:
        return replies


class CheatingGrid(Grid):
    """``inner`` (the in-process federation) seen through ``attack``."""

    def __init__(self, inner: InProcessGrid, attack: Attack) -> None:
        self.inner = inner
        self.attack = attack
        self.errors: list[str] = []  # every error reply (reason texts carry the codes)

    def set_run(self, run: Any) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Any:
        return self.inner.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        stage = stage_of(messages)
        replies = list(self.inner.send_and_receive(self.attack.outgoing(stage, messages)))
        self.errors += [r.error.reason for r in replies if r.has_error()]
        return self.attack.incoming(stage, replies)


@dataclass
class _Transcript:
    """What the coordinator learnt in one SecAgg+ attempt."""

    threshold: int = 0
    public_keys: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    masked: dict[int, np.ndarray] = field(default_factory=dict)
    seed_shares: dict[int, list[bytes]] = field(default_factory=dict)
    key_shares: dict[int, list[bytes]] = field(default_factory=dict)

    def observe(self, stage: str, messages: list[Message] | None = None,
                replies: list[Message] | None = None) -> None:
        if stage == Stage.SETUP and messages:
            self.threshold = int(configs(messages[0])[Key.THRESHOLD])
        if stage == Stage.SHARE_KEYS and messages:
            for message in messages:
                for key, value in configs(message).items():
                    if str(key).isdigit():
                        self.public_keys[int(key)] = (bytes(value[0]), bytes(value[1]))
        if stage == Stage.COLLECT_MASKED_VECTORS and replies:
            for reply in replies:
                if not reply.has_error():
                    arrays = [bytes_to_ndarray(b) for b in configs(reply)[Key.MASKED_PARAMETERS]]
                    self.masked[reply.metadata.src_node_id] = arrays[1]

    def unmask_target(self, target: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """Strip every mask from ``target``'s masked vector, if its seed and its secret key
        can both be rebuilt from the shares collected; the limbs it sent, else None."""
        seeds = self.seed_shares.get(target, [])
        keys = self.key_shares.get(target, [])
        if target not in self.masked or min(len(seeds), len(keys)) < max(self.threshold, 1):
            return None
        seed, sk1 = combine_shares(seeds), combine_shares(keys)
        shapes = [(1,), shape]
        vector = (self.masked[target] - pseudo_rand_gen(seed, MODULUS_RANGE, shapes)[1])
        for other, (pk1, _) in self.public_keys.items():
            if other == target:
                continue
            shared = generate_shared_key(bytes_to_private_key(sk1), bytes_to_public_key(pk1))
            mask = pseudo_rand_gen(shared, MODULUS_RANGE, shapes)[1]
            vector = vector - mask if target > other else vector + mask
        return np.mod(vector, MODULUS_RANGE).astype(np.int64)


class UnmaskOverlap(Attack):
    """Unmask stage: list ``target`` as both active and dropped at every site, take its seed
    shares and its secret-key shares, and hand the workflow only what it expects."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen = _Transcript()

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        self.seen.observe(stage, messages=messages)
        if stage == Stage.UNMASK:
            for message in messages:
                cfg = configs(message)
                active = list(cfg[Key.ACTIVE_NODE_ID_LIST])
                dead = list(cfg[Key.DEAD_NODE_ID_LIST])
                if self.target in active and self.target not in dead:
                    cfg[Key.DEAD_NODE_ID_LIST] = [*dead, self.target]
        return messages

    def incoming(self, stage: str, replies: list[Message]) -> list[Message]:
        self.seen.observe(stage, replies=replies)
        if stage == Stage.UNMASK:
            for reply in replies:
                if reply.has_error():
                    continue
                cfg = configs(reply)
                nids, shares = list(cfg[Key.NODE_ID_LIST]), list(cfg[Key.SHARE_LIST])
                where = [i for i, nid in enumerate(nids) if nid == self.target]
                if len(where) == 2:  # first: seed share (active), second: key share (dead)
                    self.seen.seed_shares.setdefault(self.target, []).append(shares[where[0]])
                    self.seen.key_shares.setdefault(self.target, []).append(shares[where[1]])
                    del nids[where[1]], shares[where[1]]
                    cfg[Key.NODE_ID_LIST], cfg[Key.SHARE_LIST] = nids, shares
        return replies

    def recovered(self, shape: tuple[int, ...]) -> np.ndarray | None:
        return self.seen.unmask_target(self.target, shape)


class SplitView(Attack):
    """Tell sites in ``dead_group`` that ``target`` dropped and the others that it is active
    (each site sees disjoint lists): the consistency attack of Bonawitz et al. 2017."""

    def __init__(self, target: int, dead_group: set[int]) -> None:
        self.target = target
        self.dead_group = dead_group
        self.seen = _Transcript()

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        self.seen.observe(stage, messages=messages)
        if stage == Stage.UNMASK:
            for message in messages:
                if message.metadata.dst_node_id in self.dead_group:
                    cfg = configs(message)
                    cfg[Key.ACTIVE_NODE_ID_LIST] = [n for n in cfg[Key.ACTIVE_NODE_ID_LIST]
                                                    if n != self.target]
                    cfg[Key.DEAD_NODE_ID_LIST] = [*cfg[Key.DEAD_NODE_ID_LIST], self.target]
        return messages

    def incoming(self, stage: str, replies: list[Message]) -> list[Message]:
        self.seen.observe(stage, replies=replies)
        if stage == Stage.UNMASK:
            for reply in replies:
                if reply.has_error():
                    continue
                cfg = configs(reply)
                for nid, share in zip(cfg[Key.NODE_ID_LIST], cfg[Key.SHARE_LIST], strict=True):
                    if nid == self.target:
                        book = (self.seen.key_shares if reply.metadata.src_node_id
                                in self.dead_group else self.seen.seed_shares)
                        book.setdefault(self.target, []).append(share)
        return replies

    def recovered(self, shape: tuple[int, ...]) -> np.ndarray | None:
        return self.seen.unmask_target(self.target, shape)


class UnmaskForeign(Attack):
    """Unmask stage: add a node id that is not a neighbour of anyone to the dropped list."""

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        if stage == Stage.UNMASK:
            for message in messages:
                cfg = configs(message)
                cfg[Key.DEAD_NODE_ID_LIST] = [*cfg[Key.DEAD_NODE_ID_LIST], 99_999]
        return messages


class StripStatements(Attack):
    """Share-keys stage: relay the public keys without the sites' signed statements."""

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        if stage == Stage.SHARE_KEYS:
            for message in messages:
                message.content.config_records.pop(KEYSIGS_RECORD, None)
        return messages


class SubstituteKeys(Attack):
    """A man in the middle: tell every other site that ``victim``'s public keys are the
    coordinator's own; the shares they then encrypt for the victim are the coordinator's."""

    def __init__(self, victim: int) -> None:
        self.victim = victim
        _, pk1 = generate_key_pairs()
        sk2, pk2 = generate_key_pairs()
        self.sk2 = private_key_to_bytes(sk2)
        self.fake = [public_key_to_bytes(pk1), public_key_to_bytes(pk2)]
        self.real_pk2: dict[int, bytes] = {}
        self.stolen: dict[int, tuple[bytes, bytes]] = {}  # src -> (seed share, key share)

    def outgoing(self, stage: str, messages: list[Message]) -> list[Message]:
        if stage == Stage.SHARE_KEYS:
            for message in messages:
                cfg = configs(message)
                for key, value in cfg.items():
                    if str(key).isdigit():
                        self.real_pk2[int(key)] = bytes(value[1])
                if message.metadata.dst_node_id != self.victim:
                    cfg[str(self.victim)] = list(self.fake)
        return messages

    def incoming(self, stage: str, replies: list[Message]) -> list[Message]:
        if stage == Stage.SHARE_KEYS:
            for reply in replies:
                if reply.has_error():
                    continue
                cfg = configs(reply)
                src = reply.metadata.src_node_id
                for dst, ciphertext in zip(cfg[Key.DESTINATION_LIST], cfg[Key.CIPHERTEXT_LIST],
                                           strict=True):
                    if dst != self.victim:
                        continue
                    key = generate_shared_key(bytes_to_private_key(self.sk2),
                                              bytes_to_public_key(self.real_pk2[src]))
                    _, _, seed_share, key_share = share_keys_plaintext_separate(
                        decrypt(key, ciphertext))
                    self.stolen[src] = (seed_share, key_share)
        return replies


def site_vector_limbs(path: Path, spec: Any) -> np.ndarray:
    """The limbs a site's masked vector carries (its encoded tally, shifted to ``[0, 2c]``)."""
    from fedsurv.harness.simulation import site_tallies
    from fedsurv.protocol.layout import TallyLayout
    from fedsurv.protocol.secure_encoding import SecureEncoding

    layout = TallyLayout(spec)
    return SecureEncoding.for_layout(layout).to_limbs(layout.encode(site_tallies(path, spec)))
