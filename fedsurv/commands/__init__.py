"""One module per command group of the ``fedsurv`` CLI; each coordinator module exposes
``register(app)``, :mod:`~.site` is the ``fedsurv site`` group. Each command keeps heavy
imports inside the command function.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("simulate", "demo", "run", "report", "spec", "coordinator")


def register(app: typer.Typer) -> None:
    """Attach every command module to the root app; a module that fails to import raises (a
    command never disappears silently from the CLI)."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"fedsurv.commands.{name}")
        module.register(app)
