"""Flower at the edges (issue 13): the contract and the request core import no flwr, and the
arrows run one way (adapters import the core, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return names


def _offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(n for n in _imports(path)
                     if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_protocol_imports_no_flower() -> None:
    assert _offenders(sorted((ROOT / "protocol").rglob("*.py")), ("flwr",)) == {}


def test_request_core_imports_neither_flower_nor_its_adapter() -> None:
    core = sorted((ROOT / "coordinator" / "request").rglob("*.py"))
    core += [ROOT / "coordinator" / name for name in
             ("progress.py", "progress_events.py", "run_config.py", "node_names.py",
              "audit_trail.py", "results.py", "analysis.py")]
    assert _offenders(core, ("flwr", "fedsurv.coordinator.flower")) == {}


def test_adapters_do_not_reach_into_each_other() -> None:
    site = sorted((ROOT / "site_node").rglob("*.py"))
    assert _offenders(site, ("fedsurv.coordinator",)) == {}
