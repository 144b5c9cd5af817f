"""No fail-open imports: a module the product needs that cannot be imported raises (issue 13)."""

from __future__ import annotations

import importlib
import sys

import pytest
import typer

import fedsurv.commands as coordinator_cli


def test_site_answer_fails_closed_without_release_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``except ImportError: return None`` released without the policy check."""
    monkeypatch.delitem(sys.modules, "fedsurv.site_node.answer", raising=False)
    monkeypatch.setitem(sys.modules, "fedsurv.site_node.policy", None)  # import -> ImportError
    with pytest.raises(ImportError):
        importlib.import_module("fedsurv.site_node.answer")


def test_missing_command_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_cli, "COMMAND_MODULES", ("run", "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        coordinator_cli.register(typer.Typer())


def test_command_module_failing_to_import_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fedsurv.commands.report", None)
    with pytest.raises(ImportError):
        coordinator_cli.register(typer.Typer())


def test_every_command_module_registers() -> None:
    app = typer.Typer()
    coordinator_cli.register(app)
    names = {command.name or command.callback.__name__ for command in app.registered_commands}
    names |= {group.name for group in app.registered_groups}
    assert {"simulate", "demo", "run", "report"} <= names
