#!/usr/bin/env python3
"""Print the ``podman run`` commands of a compose file, for machines without a compose tool.

    python deploy/bin/compose_to_podman.py deploy/compose.yaml > up.sh && sh up.sh

Covers what ``deploy/compose.yaml`` uses (image, command, environment, volumes, tmpfs,
network_mode, read_only, restart, depends_on ordering and ``condition: service_healthy``, waited
for with ``podman healthcheck run``); services without dependencies come first. Containers
are named ``<project>-<service>``, named volumes ``<project>-<volume>``.
``--down`` prints the commands that remove them again (``--volumes`` also the volumes).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """``${VAR:-default}`` from the environment, recursively."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m["name"]) or (m["default"] or ""), value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def ordered(services: dict[str, Any]) -> list[str]:
    """Service names, every service after the ones it depends on."""
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done:
            return
        if name in path:
            raise SystemExit(f"dependency cycle through {name}")
        for dep in services[name].get("depends_on") or []:
            visit(dep, (*path, name))
        done.append(name)

    for name in services:
        visit(name)
    return done


def volume_arg(spec: str, base: Path, project: str, named: set[str]) -> str:
    source, _, rest = spec.partition(":")
    if source in named:
        source = f"{project}-{source}"
    elif not source.startswith("/"):
        source = str((base / source).resolve())
    return f"{source}:{rest}"


def run_command(project: str, name: str, service: dict[str, Any], base: Path,
                named: set[str]) -> list[str]:
    argv = ["podman", "run", "-d", "--name", f"{project}-{name}"]
    if service.get("network_mode"):
        argv += ["--network", service["network_mode"]]
    if service.get("read_only"):
        argv.append("--read-only")
    for path in service.get("tmpfs") or []:
        argv += ["--tmpfs", path]
    if service.get("restart"):
        argv += ["--restart", service["restart"]]
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        environment = [f"{k}={v}" for k, v in environment.items()]
    for pair in environment:
        argv += ["-e", pair]
    for spec in service.get("volumes") or []:
        argv += ["-v", volume_arg(spec, base, project, named)]
    argv.append(service["image"])
    command = service.get("command") or []
    argv += shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    return argv


def healthy_dependencies(service: dict[str, Any]) -> list[tuple[str, str]]:
    """``(service, condition)`` of ``depends_on`` (list form means service_started)."""
    deps = service.get("depends_on") or []
    if isinstance(deps, list):
        return [(d, "service_started") for d in deps]
    return [(d, (v or {}).get("condition", "service_started")) for d, v in deps.items()]


def wait_healthy(container: str, timeout: int = 300) -> str:
    """Shell lines waiting until ``podman healthcheck run`` passes (no systemd timers needed)."""
    name = shlex.quote(container)
    return (f"i=0; until podman healthcheck run {name} >/dev/null 2>&1; do "
            f"i=$((i + 2)); if [ $i -gt {timeout} ]; then "
            f"echo '{container} is not healthy after {timeout} s' >&2; exit 1; fi; "
            "sleep 2; done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("compose_file", type=Path)
    parser.add_argument("--down", action="store_true", help="print the removal commands")
    parser.add_argument("--volumes", action="store_true", help="with --down: volumes too")
    parser.add_argument("--project", help="project name (default: the file's `name`)")
    args = parser.parse_args(argv)
    spec = interpolate(yaml.safe_load(args.compose_file.read_text()))
    project = args.project or spec.get("name") or args.compose_file.resolve().parent.name
    services: dict[str, Any] = spec["services"]
    named = set(spec.get("volumes") or {})
    names = ordered(services)
    lines = []
    if args.down:
        lines += [shlex.join(["podman", "rm", "-f", "-t", "5", f"{project}-{n}"])
                  for n in reversed(names)]
        if args.volumes:
            lines += [shlex.join(["podman", "volume", "rm", "-f", f"{project}-{v}"])
                      for v in sorted(named)]
    else:
        base = args.compose_file.resolve().parent
        waited: set[str] = set()
        for name in names:
            for dep, condition in healthy_dependencies(services[name]):
                if condition == "service_healthy" and dep not in waited:
                    lines.append(wait_healthy(f"{project}-{dep}"))
                    waited.add(dep)
            lines.append(shlex.join(run_command(project, name, services[name], base, named)))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
