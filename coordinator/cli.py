"""Coordinator commands (simulate, demo, run, report, spec), attached to the root ``fedsurv`` app.

Each command lives in its own module under :mod:`fedsurv.coordinator.commands` and keeps heavy
imports
inside the command function.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("simulate", "demo", "run", "report", "spec", "coordinator")


def register(app: typer.Typer) -> None:
    """Attach every command module to the root app; a module that fails to import raises (a
    command never disappears silently from the CLI)."""
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"fedsurv.coordinator.commands.{name}")
        module.register(app)
