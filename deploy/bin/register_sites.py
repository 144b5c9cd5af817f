#!/usr/bin/env python3
"""Register every site of a fedsurv allow-list with the SuperLink (``flwr supernode register``).

    python register_sites.py --allow-list allow-list.csv [--connection fedsurv] [--wait 60]

The allow-list is the CSV that ``fedsurv keys enrol NAME.enrol.json --allow-list ...`` writes.
Idempotent: a key the SuperLink already knows is reported as such. The ``flwr`` CLI finds the
SuperLink through the connection named ``--connection`` in ``$FLWR_HOME/config.toml``.
Exit code 0 when every site is registered.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ALREADY = "already in use"
UNAVAILABLE = ("unavailable", "Connection", "connect")


def register(pubkey: Path, name: str, connection: str) -> tuple[bool, str]:
    """(ok, message) of one ``flwr supernode register``; a known key counts as ok."""
    flwr = shutil.which("flwr") or str(Path(sys.executable).with_name("flwr"))
    result = subprocess.run(
        [flwr, "supernode", "register", str(pubkey), connection, "--name", name,
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    text = result.stdout
    try:
        answer = json.loads(text[text.index("{"):])
    except ValueError:
        return False, (text + result.stderr).strip()[-500:] or f"exit code {result.returncode}"
    if answer.get("success"):
        return True, f"registered, node id {answer.get('node-id', '?')}"
    message = str(answer.get("error-message", "")).strip().splitlines()[-1:]
    reason = message[0] if message else "unknown error"
    if ALREADY in reason:
        return True, "already registered"
    return False, reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-list", type=Path, required=True)
    parser.add_argument("--connection", default="fedsurv")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to keep retrying while the SuperLink is not reachable")
    parser.add_argument("--parallel", type=int, default=4, help="registrations at a time")
    args = parser.parse_args(argv)

    from fedsurv.keys_cli import AllowListEntry, read_allow_list

    entries = read_allow_list(args.allow_list)
    if not entries:
        print(f"{args.allow_list}: no enrolled site")
        return 0
    deadline = time.monotonic() + args.wait

    def one(entry: AllowListEntry, folder: Path) -> bool:
        pubkey = folder / f"{entry.name}.pub"
        pubkey.write_text(entry.node_public_key + "\n")
        while True:
            ok, message = register(pubkey, entry.name, args.connection)
            retry = not ok and any(u in message for u in UNAVAILABLE)
            if not retry or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        print(f"{entry.name} ({entry.node_fingerprint}): {message}", flush=True)
        return ok

    with (tempfile.TemporaryDirectory(prefix="fedsurv-register-") as tmp,
          ThreadPoolExecutor(max_workers=args.parallel) as pool):
        results = list(pool.map(lambda e: one(e, Path(tmp)), entries))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
