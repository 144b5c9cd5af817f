"""Coordinator commands: simulate, demo, run and spec, attached to the root app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the coordinator's commands to the root ``fedsurv`` app."""
