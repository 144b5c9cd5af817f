"""Every Flower internal fedsurv patches, wraps or calls, checked against the installed flwr.

fedsurv pins ``flwr==1.42.0``, but a pin is only a promise: these checks make an upgrade (or a
patched wheel) fail here, naming the symbol, instead of silently disabling fast polling, code
pinning or the SecAgg+ mask generator. Who relies on what:

* :mod:`fedsurv.coordinator.deployment.fastpoll`: the ``time`` module of four flwr modules,
  ``_pull_and_store_message`` / ``_push_messages`` / ``pull_objects`` of the SuperNode loop,
  ``HttpGrid.push_messages`` / ``pull_objects`` of the ServerApp grid, the SuperExec's
  ``_handle_launch_result``, three console entry points;
* :mod:`fedsurv.site_node.flower.pinning`: ``_pull_and_store_message`` (keywords) and
  ``_insert_message`` (the deeper source checks are in tests/site_node/test_pinning.py);
* :mod:`fedsurv.site_node.flower.secure_prg`, :mod:`fedsurv.coordinator.flower.secure_prg`:
  ``pseudo_rand_gen`` in Flower's three SecAgg+ modules;
* :mod:`fedsurv.harness.inprocess` and :mod:`fedsurv.coordinator.flower.round_grid`: the
  ``Grid`` interface, ``flwr.supercore.run.Run``, ``TaskIdentity``, ``flwr.common.serde``;
* :mod:`fedsurv.harness.zygote`: the ClientApp and ServerApp entry points it forks into;
* :mod:`fedsurv.coordinator.deployment.runner`: the ``flwr`` CLI's connection helpers.
"""

from __future__ import annotations

import importlib
import inspect
import time
from typing import Any

import pytest
from fedsurv.coordinator.deployment import fastpoll
from fedsurv.harness import zygote
from fedsurv.protocol import secure_prg
from fedsurv.site_node.flower import pinning

SUPERNODE = "flwr.supernode.start_client_internal"
HTTP_GRID = "flwr.superlink.grid.http_grid"
SUPEREXEC = "flwr.supercore.superexec.run_superexec"

PULL_OBJECTS = ["object_ids", "pull_object_fn", "max_concurrent_pulls", "max_time",
                "max_tries_per_object", "initial_backoff", "backoff_cap"]
SIGNATURES: dict[tuple[str, str], list[str]] = {
    # fastpoll (wake signals, object retries) and pinning (the bundle check)
    (SUPERNODE, "_pull_and_store_message"): [
        "state", "object_store", "node_config", "receive", "get_run", "get_fab", "pull_object",
        "confirm_message_received", "trusted_entities"],
    (SUPERNODE, "_push_messages"): ["state", "object_store", "send", "push_object"],
    (SUPERNODE, "_insert_message"): ["msg", "state", "store"],
    (SUPERNODE, "pull_objects"): PULL_OBJECTS,
    (HTTP_GRID, "HttpGrid.push_messages"): ["self", "messages"],
    (HTTP_GRID, "pull_objects"): PULL_OBJECTS,
    (SUPEREXEC, "_handle_launch_result"): ["result", "task"],
    # the Grid interface the in-process grid and RoundGrid implement
    ("flwr.serverapp", "Grid.create_message"): [
        "self", "content", "message_type", "dst_node_id", "group_id", "ttl"],
    ("flwr.serverapp", "Grid.push_messages"): ["self", "messages"],
    ("flwr.serverapp", "Grid.pull_messages"): ["self", "message_ids"],
    ("flwr.serverapp", "Grid.send_and_receive"): ["self", "messages", "timeout"],
    ("flwr.serverapp", "Grid.set_run"): ["self", "run"],
    ("flwr.supercore.run", "Run.create_empty"): ["run_id"],
    ("flwr.common.serde", "message_to_proto"): ["message"],
    ("flwr.common.serde", "message_from_proto"): ["message_proto"],
    # secure_prg's drop-in replacement has the same parameters
    ("flwr.common.secure_aggregation.secaggplus_utils", "pseudo_rand_gen"): [
        "seed", "num_range", "dimensions_list"],
    # runner.list_nodes
    ("flwr.cli.flower_config", "read_superlink_connection"): ["connection_name"],
    ("flwr.cli.utils", "init_http_client_from_connection"): ["connection", "auth_plugin"],
}


def _resolve(module_name: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        assert obj is not None, f"flwr no longer has {module_name}.{qualname}"
    return inspect.unwrap(obj)


@pytest.mark.parametrize(("module_name", "qualname"), list(SIGNATURES),
                         ids=[f"{m}.{q}" for m, q in SIGNATURES])
def test_a_flower_internal_fedsurv_relies_on_keeps_its_signature(
    module_name: str, qualname: str
) -> None:
    target = _resolve(module_name, qualname)
    assert list(inspect.signature(target).parameters) == SIGNATURES[module_name, qualname], (
        f"{module_name}.{qualname} changed its signature: update the code that patches or "
        "calls it (see this test's docstring), then this table")


def test_fastpoll_patches_exactly_the_modules_checked_here() -> None:
    patched = {*fastpoll.PATCHED_MODULES.values(), fastpoll.LOGGER_MODULE}
    assert patched == {SUPERNODE, HTTP_GRID, SUPEREXEC, "flwr.supercore.logger"}
    for module_name in patched:  # fastpoll swaps the `time` each of them sleeps through
        module = importlib.import_module(module_name)
        assert getattr(module, "time", None) is time, f"{module_name} no longer uses `time`"
        assert "time.sleep(" in inspect.getsource(module), f"{module_name} no longer sleeps"
    assert callable(importlib.import_module(HTTP_GRID).HttpGrid.push_messages)


def test_pinning_wraps_the_function_checked_here() -> None:
    assert (pinning.PATCHED_MODULE, pinning.PATCHED_FUNCTION) == (
        SUPERNODE, "_pull_and_store_message")
    wrapped = pinning.pinned_pull(lambda **kwargs: None, pinning.PinPolicy())
    assert wrapped.__wrapped__ is not None  # the wrapper keeps Flower's keyword interface


@pytest.mark.parametrize("entry", [
    *(f"{module}:{function}" for module, function in fastpoll.ENTRY_POINTS.values()),
    zygote.CLIENT_ENTRY, zygote.SERVER_ENTRY,
])
def test_the_entry_points_fedsurv_starts_take_no_arguments(entry: str) -> None:
    module_name, function = entry.split(":")
    target = _resolve(module_name, function)
    assert list(inspect.signature(target).parameters) == [], entry


def test_secure_prg_replaces_pseudo_rand_gen_where_flower_calls_it() -> None:
    from fedsurv.coordinator.flower import secure_prg as coordinator_prg
    from fedsurv.site_node.flower import secure_prg as site_prg

    for module in {*coordinator_prg._MODULES, *site_prg._MODULES}:
        module_name = module.__name__
        assert hasattr(module, "pseudo_rand_gen"), f"{module_name} no longer has pseudo_rand_gen"
        assert "pseudo_rand_gen(" in inspect.getsource(module), module_name
    ours = list(inspect.signature(secure_prg.secure_pseudo_rand_gen).parameters)
    assert ours == SIGNATURES["flwr.common.secure_aggregation.secaggplus_utils",
                              "pseudo_rand_gen"]


def test_task_identity_keeps_its_settable_class_properties() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    meta = type(TaskIdentity)
    for name in ("run_id", "node_id", "task_id"):
        prop = getattr(meta, name, None)
        assert isinstance(prop, property) and prop.fset is not None, name


@pytest.mark.parametrize("module_name", fastpoll.HEARTBEAT_MODULES)
def test_heartbeat_interval_is_read_from_the_module_fastpoll_sets(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert isinstance(module.HEARTBEAT_DEFAULT_INTERVAL, int | float)
    assert "HEARTBEAT_DEFAULT_INTERVAL" in inspect.getsource(module).split("import", 1)[1]


def test_heartbeat_interval_is_set_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = [importlib.import_module(name) for name in fastpoll.HEARTBEAT_MODULES]
    for module in modules:
        monkeypatch.setattr(module, "HEARTBEAT_DEFAULT_INTERVAL", 30)
    monkeypatch.delenv(fastpoll.HEARTBEAT_ENV, raising=False)
    fastpoll._set_heartbeat_interval()
    assert [m.HEARTBEAT_DEFAULT_INTERVAL for m in modules] == [30, 30]
    monkeypatch.setenv(fastpoll.HEARTBEAT_ENV, "2")  # below flwr's minimum: clamped to 10
    fastpoll._set_heartbeat_interval()
    assert [m.HEARTBEAT_DEFAULT_INTERVAL for m in modules] == [10.0, 10.0]
