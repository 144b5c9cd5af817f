"""Coordinator commands (simulate, demo, run, report, spec), attached to the root ``fedsurv`` app.

Each command lives in its own module under :mod:`fedsurv.commands` and keeps heavy
imports
inside the command function.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("simulate", "demo", "run", "report", "spec", "coordinator")


def register(app: typer.Typer) -> None:
    """Attach every command module that exists to the root app."""
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fedsurv.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"fedsurv.commands.{name}":
                raise
            continue
        module.register(app)
