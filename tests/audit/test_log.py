"""The writer: chaining, resuming, refusing damaged or foreign logs, concurrent appends."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fedsurv.protocol.audit import (
    AuditLog,
    AuditLogError,
    RecordKind,
    site_actor,
    verify_log,
)
from fedsurv.protocol.audit.head import head_path
from fedsurv.protocol.signing import KeyFileError, create_signing_key
from pydantic import ValidationError

from tests.audit.builders import make_keys, release, request


def test_records_chain_from_genesis(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    log = AuditLog(tmp_path / "a.jsonl", keys.private, actor=site_actor("a"))
    first = log.append(RecordKind.REQUEST_RECEIVED, request("r1"))
    second = log.append("tally_released", release("r1").model_dump())
    assert (first.seq, first.prev_hash) == (0, "0" * 64)
    assert (second.seq, second.prev_hash) == (1, first.hash)
    assert second.time.endswith("Z")
    assert verify_log(tmp_path / "a.jsonl", keys.public).ok


def test_a_new_writer_resumes_the_chain(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    path = tmp_path / "a.jsonl"
    AuditLog(path, keys.private, actor=site_actor("a")).append(
        RecordKind.REQUEST_RECEIVED, request("r1"))
    record = AuditLog(path, keys.private, actor=site_actor("a")).append(
        RecordKind.REQUEST_RECEIVED, request("r2"))
    assert record.seq == 1
    assert verify_log(path, keys.public).ok


def test_body_must_match_kind(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    log = AuditLog(tmp_path / "a.jsonl", keys.private, actor=site_actor("a"))
    with pytest.raises(TypeError):
        log.append(RecordKind.TALLY_RELEASED, request("r1"))
    with pytest.raises(ValidationError):
        log.append(RecordKind.TALLY_RELEASED, {"request_id": "r1"})


def test_writer_refuses_a_damaged_tail(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys.private, actor=site_actor("a"))
    log.append(RecordKind.REQUEST_RECEIVED, request("r1"))
    path.write_bytes(path.read_bytes().replace(b'"r1"', b'"r9"'))
    with pytest.raises(AuditLogError, match="last record fails verification"):
        log.append(RecordKind.REQUEST_RECEIVED, request("r2"))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(AuditLogError, match="incomplete"):
        AuditLog(path, keys.private, actor=site_actor("a"))


def test_writer_refuses_another_key_or_actor(tmp_path: Path) -> None:
    keys, other = make_keys(tmp_path, "a"), make_keys(tmp_path, "b")
    path = tmp_path / "a.jsonl"
    AuditLog(path, keys.private, actor=site_actor("a")).append(
        RecordKind.REQUEST_RECEIVED, request("r1"))
    with pytest.raises(AuditLogError, match="wrong_key"):
        AuditLog(path, other.private, actor=site_actor("a"))
    with pytest.raises(AuditLogError, match="is the log of"):
        AuditLog(path, keys.private, actor=site_actor("b"))


def test_signing_key_files(tmp_path: Path) -> None:
    private, public = create_signing_key(tmp_path, "a")
    assert os.stat(private).st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in public.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        create_signing_key(tmp_path, "a")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        AuditLog(tmp_path / "x.jsonl", public, actor=site_actor("a"))
    ec_key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (tmp_path / "ec.key").write_bytes(ec_key)
    with pytest.raises(KeyFileError, match="not an Ed25519"):
        AuditLog(tmp_path / "x.jsonl", tmp_path / "ec.key", actor=site_actor("a"))
    assert head_path(tmp_path / "x.jsonl").name == "x.jsonl.head"


def _append_many(path: str, key: str, count: int) -> None:
    log = AuditLog(path, key, actor=site_actor("a"))
    for i in range(count):
        log.append(RecordKind.REQUEST_RECEIVED, request(f"p{os.getpid()}-{i}"))


def test_concurrent_processes_and_threads_keep_one_chain(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    path = tmp_path / "a.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), str(keys.private), 15))
               for _ in range(3)]
    threads = [threading.Thread(target=_append_many, args=(str(path), str(keys.private), 15))
               for _ in range(2)]
    for worker in (*workers, *threads):
        worker.start()
    for worker in (*workers, *threads):
        worker.join()
    assert all(w.exitcode == 0 for w in workers)
    report = verify_log(path, keys.public)
    assert report.ok, report.problem
    assert len(report.records) == 75


def test_writer_refuses_a_log_cut_before_its_head(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "a")
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys.private, actor=site_actor("a"))
    for request_id in ("r1", "r2"):
        log.append(RecordKind.REQUEST_RECEIVED, request(request_id))
    path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n")
    with pytest.raises(AuditLogError, match="records were deleted"):
        AuditLog(path, keys.private, actor=site_actor("a"))
    path.write_bytes(b"")
    with pytest.raises(AuditLogError, match="records were deleted"):
        AuditLog(path, keys.private, actor=site_actor("a"))


def test_digests() -> None:
    import hashlib

    import numpy as np
    from fedsurv.protocol.audit import vector_sha256

    expected = hashlib.sha256(np.array([1, 2, 3], dtype="<i8").tobytes()).hexdigest()
    assert vector_sha256([1, 2, 3]) == vector_sha256(np.array([1, 2, 3], dtype=np.int32))
    assert vector_sha256([1, 2, 3]) == expected
    with pytest.raises(ValueError):
        vector_sha256([1.5])


def test_public_key_from_an_allow_list_line(tmp_path: Path) -> None:
    from fedsurv.protocol.signing import key_id, load_public_key, public_openssh

    keys = make_keys(tmp_path, "a")
    log = AuditLog(tmp_path / "a.jsonl", keys.private, actor=site_actor("a"))
    log.append(RecordKind.REQUEST_RECEIVED, request("r1"))
    line = tmp_path / "a.ssh.pub"
    line.write_text(public_openssh(load_public_key(keys.public)) + "\n")
    assert key_id(load_public_key(line)) == key_id(load_public_key(keys.public))
    assert verify_log(tmp_path / "a.jsonl", line).ok
