"""Code pinning rule (:mod:`fedsurv.site_node.flower.pinning`) and the Flower internals it wraps.

The rule is checked on bundles built by Flower's own builder (what ``flwr run`` ships). The
contract test fails loudly when flwr changes the SuperNode internals the pin relies on; the
process-level attack tests are in ``tests/security/test_code_pinning.py``.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import zipfile
from pathlib import Path

import pytest
from fedsurv.coordinator.deployment.fab import write_bundle
from fedsurv.site_node.flower import pinning
from fedsurv.site_node.flower.pinning import FEDSURV_CLIENTAPP, PinPolicy, check_bundle
from flwr.cli.build import build_fab_from_disk

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # on purpose


def _fab(directory: Path) -> tuple[bytes, str]:
    content = build_fab_from_disk(directory)
    return content, hashlib.sha256(content).hexdigest()


def test_the_fedsurv_bundle_is_approved_and_hashes_the_same_every_time(tmp_path: Path) -> None:
    first, digest = _fab(write_bundle(tmp_path / "a"))
    _again, digest_again = _fab(write_bundle(tmp_path / "b"))
    assert digest == digest_again
    verdict = check_bundle(first, digest, PinPolicy())
    assert verdict.approved and verdict.clientapp == FEDSURV_CLIENTAPP
    assert verdict.bundle_sha256 == digest


def _with_file(content: bytes, name: str) -> tuple[bytes, str]:
    """The bundle with one more zip entry (a hand-made FAB: Flower's builder is optional)."""
    buffer = io.BytesIO(content)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(name, "import os\n")
    return buffer.getvalue(), hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.mark.parametrize("extra", ["evil.py", "site_node/__init__.py", "x.pth", "data.txt",
                                   "pyproject.toml"])
def test_a_bundle_with_any_other_file_is_refused(tmp_path: Path, extra: str) -> None:
    bundle = write_bundle(tmp_path / "b")
    if extra.endswith(".py"):  # through Flower's builder, as `flwr run` ships it
        (bundle / extra).parent.mkdir(parents=True, exist_ok=True)
        (bundle / extra).write_text("print('pwned')\n")
        content, digest = _fab(bundle)
    else:
        content, digest = _with_file(_fab(bundle)[0], extra)
        extra = "duplicates" if extra == "pyproject.toml" else extra
    verdict = check_bundle(content, digest, PinPolicy())
    assert not verdict.approved and extra in verdict.reason
    assert verdict.message(7).startswith("code_not_approved: run 7:")


def test_a_foreign_clientapp_or_dependencies_or_wrong_hash_are_refused(tmp_path: Path) -> None:
    content, digest = _fab(write_bundle(tmp_path / "a", clientapp="os:system"))
    assert "'os:system'" in check_bundle(content, digest, PinPolicy()).reason
    bundle = write_bundle(tmp_path / "b")
    text = (bundle / "pyproject.toml").read_text()
    (bundle / "pyproject.toml").write_text(
        text.replace("dependencies = []", 'dependencies = ["evil"]'))
    content, digest = _fab(bundle)
    assert "dependencies" in check_bundle(content, digest, PinPolicy()).reason
    good, _good_digest = _fab(write_bundle(tmp_path / "c"))
    assert "not the announced" in check_bundle(good, "0" * 64, PinPolicy()).reason
    assert not check_bundle(b"not a zip", hashlib.sha256(b"not a zip").hexdigest(),
                            PinPolicy()).approved


def test_a_bundle_naming_other_app_components_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "a")
    text = (bundle / "pyproject.toml").read_text()
    (bundle / "pyproject.toml").write_text(text.replace(
        "[tool.flwr.app.components]\n", '[tool.flwr.app.components]\nagentapp = "os:system"\n'))
    content, digest = _hand_made(bundle)
    assert "agentapp" in check_bundle(content, digest, PinPolicy()).reason


def _hand_made(directory: Path) -> tuple[bytes, str]:
    """A FAB zipped by hand from ``directory`` (a hostile submitter need not use Flower's
    builder, which validates components)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pyproject.toml", (directory / "pyproject.toml").read_bytes())
        archive.writestr(".info/CONTENT", "")
    return buffer.getvalue(), hashlib.sha256(buffer.getvalue()).hexdigest()


def test_explicit_approvals(tmp_path: Path) -> None:
    """Another installed ClientApp, or one exact bundle hash, only when the site says so."""
    content, digest = _fab(write_bundle(tmp_path / "a", clientapp="bench.app:app"))
    assert not check_bundle(content, digest, PinPolicy()).approved
    allowed = PinPolicy(clientapps=frozenset({FEDSURV_CLIENTAPP, "bench.app:app"}))
    assert check_bundle(content, digest, allowed).approved
    assert check_bundle(content, digest, PinPolicy(approved_bundles=frozenset({digest}))).approved


def test_flower_supernode_internals_the_pin_relies_on() -> None:
    """If this fails, flwr changed ``start_client_internal``: re-read it and adapt
    :func:`fedsurv.site_node.flower.pinning.pinned_pull` before trusting the pin again."""
    from flwr.supernode import start_client_internal as sci

    pull = sci._pull_and_store_message
    params = set(inspect.signature(getattr(pull, "__wrapped__", pull)).parameters)
    assert {"state", "object_store", "node_config", "receive", "get_run", "get_fab"} <= params
    source = inspect.getsource(sci)
    main_loop = inspect.getsource(sci.start_client_internal)
    assert "_pull_and_store_message(" in main_loop and "_push_messages(" in main_loop
    assert "node_config=node_config" in main_loop  # every keyword, so the wrapper can swap it
    body = inspect.getsource(getattr(pull, "__wrapped__", pull))
    # the run's bundle is fetched before the task exists, and the context gets node_config
    assert body.index("get_run(") < body.index("get_fab(") < body.index("state.create_task(")
    assert "TaskType.AGENT_APP" in body  # the run's primary task type picks the app process
    assert "node_config=node_config" in body
    assert "def _insert_message(msg: Message, state: NodeState, store: ObjectStore)" in source
    from flwr.common.constant import ErrorCode

    assert ErrorCode.INVALID_FAB == 7


def test_install_is_idempotent_and_wraps_flower() -> None:
    from flwr.supernode import start_client_internal as sci

    original = sci._pull_and_store_message
    try:
        pinning.install()
        pinning.install()
        assert sci._pull_and_store_message.fedsurv_pinned  # type: ignore[attr-defined]
        assert sci._pull_and_store_message.__wrapped__ is original  # type: ignore[attr-defined]
    finally:
        sci._pull_and_store_message = original
