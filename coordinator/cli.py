"""Coordinator commands: ``fedsurv simulate``, ``fedsurv demo``, ``fedsurv run``, ``fedsurv spec``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the coordinator's commands to the root ``fedsurv`` app."""
