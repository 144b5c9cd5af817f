"""Code pinning: the site's SuperNode runs only ClientApp code installed at the site.

``flwr run`` ships an app bundle (FAB) with every run, and the ClientApp process puts it first
on ``sys.path``: code in a bundle would run at the hospital, whoever submitted it
(docs/design.md §6: the coordinator sends data, a spec, never code). The site therefore checks every
run's bundle *in the SuperNode process, before it creates a task for the run*, so no
``flwr-clientapp`` process ever starts for a refused bundle and none of its code is imported.

Rule (:func:`check_bundle`): a bundle is approved when

* its SHA-256 is the hash the SuperLink announced for the run (Flower's FAB hash), and either
* it is *config only*: exactly ``pyproject.toml`` and Flower's ``.info/CONTENT`` manifest, no
  dependencies, and its ClientApp component is one this site allows (by default only
  ``fedsurv.site_node.flower.client_app:app``, fedsurv's installed ClientApp): with no code in the
  bundle, the component resolves to the installed package; or
* its hash is on the site's explicit list of approved bundles (``--approve-bundle``).

Anything else is refused with reason ``code_not_approved``: a ``policy_decision`` record in the
site audit log (request id ``run-<run id>``, the bundle hash and run id, the refusal reason)
and an error reply to the coordinator (Flower's ``INVALID_FAB`` error code), so the
coordinator sees a refusal, not a hang. An approved run's node config gains ``bundle-sha256``
and ``fedsurv-run-id`` (:data:`~fedsurv.site_node.audit_trail.BUNDLE_KEY`, ``RUN_ID_KEY``): the
ClientApp writes both into every audit record of the request.

Flower has no public hook at this point (``--trusted-entities`` accepts only FABs that carry a
Flower-platform licence and signature, and refuses every unsigned FAB), so :func:`install`
wraps ``flwr.supernode.start_client_internal._pull_and_store_message``: the wrapper sees the
message that was pulled and the bundle that was fetched for it, and on refusal stores the
error reply with Flower's own ``_insert_message``, as Flower's trusted-entities check does.
``tests/site_node/test_pinning.py`` fails if those internals change.

Launch (``fedsurv site start`` does this)::

    python -m fedsurv.site_node.flower.pinning [--approve-bundle SHA256]... [--allow-clientapp
    M:A]...
        [--via MODULE] ARGS...

installs the check, then runs ``flower-supernode ARGS`` (or ``python -m MODULE ARGS``: the
loopback launcher's poll-interval wrapper).
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedsurv.site_node import audit_trail
from fedsurv.site_node.audit_trail import BUNDLE_KEY, RUN_ID_KEY

FEDSURV_CLIENTAPP = "fedsurv.site_node.flower.client_app:app"
REASON_CODE = "code_not_approved"
ALLOWED_COMPONENTS = frozenset({"serverapp", "clientapp"})
AGENT_TASK = "flwr-agentapp"
"""A run of this primary task type would make the SuperNode start ``flwr-agentapp``."""
CONFIG_ONLY_FILES = frozenset({"pyproject.toml", ".info/CONTENT"})
MAX_BUNDLE_BYTES = 1 << 20
"""A config-only bundle is a few kilobytes; anything bigger is not one."""
PATCHED_MODULE = "flwr.supernode.start_client_internal"
PATCHED_FUNCTION = "_pull_and_store_message"
logger = logging.getLogger("fedsurv.site")


@dataclass(frozen=True)
class Verdict:
    """The site's decision on one run's bundle."""

    bundle_sha256: str
    approved: bool
    reason: str = ""
    clientapp: str = ""

    def message(self, run_id: int) -> str:
        """The refusal text the coordinator sees (no site data in it)."""
        return (f"{REASON_CODE}: run {run_id}: this site runs only the ClientApp code it "
                f"installed; bundle sha256 {self.bundle_sha256} refused: {self.reason}")


@dataclass(frozen=True)
class PinPolicy:
    """What the site accepts: installed ClientApp references and explicit bundle hashes."""

    clientapps: frozenset[str] = frozenset({FEDSURV_CLIENTAPP})
    approved_bundles: frozenset[str] = frozenset()


def check_bundle(content: bytes, announced_sha256: str, policy: PinPolicy) -> Verdict:
    """Approve or refuse one bundle (see the module docstring for the rule). Never imports,
    installs or extracts anything: the zip's directory and ``pyproject.toml`` are read."""
    digest = hashlib.sha256(content).hexdigest()

    def refuse(reason: str, clientapp: str = "") -> Verdict:
        return Verdict(digest, False, reason, clientapp)

    if digest != announced_sha256:
        return refuse(f"its content hashes to {digest}, not the announced {announced_sha256}")
    if digest in policy.approved_bundles:
        return Verdict(digest, True, "on the site's list of approved bundles")
    if len(content) > MAX_BUNDLE_BYTES:
        return refuse(f"{len(content)} bytes: not a config-only bundle")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = archive.namelist()
            extra = sorted(set(names) - CONFIG_ONLY_FILES)
            if extra or len(names) != len(set(names)) or "pyproject.toml" not in names:
                shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
                return refuse(f"it ships files other than pyproject.toml ({shown or 'duplicates'})")
            config = tomllib.loads(archive.read("pyproject.toml").decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError,
            OSError, ValueError) as exc:
        return refuse(f"not a readable app bundle ({type(exc).__name__})")
    app = config.get("tool", {}).get("flwr", {}).get("app", {})
    components = app.get("components", {}) if isinstance(app, dict) else {}
    clientapp = str(components.get("clientapp", "")) if isinstance(components, dict) else ""
    others = sorted(set(components) - ALLOWED_COMPONENTS) if isinstance(components, dict) else []
    if others:  # e.g. an agentapp: Flower would load it from the installed packages
        return refuse(f"it names app components this site does not run ({', '.join(others)})",
                      clientapp)
    if clientapp not in policy.clientapps:
        return refuse(f"its ClientApp {clientapp!r} is not one this site installed and allows",
                      clientapp)
    dependencies = config.get("project", {}).get("dependencies", [])
    if dependencies:
        return refuse("it declares dependencies to install", clientapp)
    return Verdict(digest, True, "config-only bundle naming an installed ClientApp", clientapp)


class CodeNotApproved(Exception):
    """Raised inside the wrapped pull when a run's bundle is refused (never leaves it)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


def audit_refusal(node_config: Mapping[str, Any], run_id: int, verdict: Verdict) -> None:
    """``policy_decision`` (refuse, ``code_not_approved``) in the site audit log, naming the
    run and the bundle hash. A log that cannot be written is reported; the run stays refused."""
    try:
        audit = audit_trail.SiteAudit.from_node_config(node_config)
        if audit is not None:
            audit.code_refused(run_id, verdict.bundle_sha256)
    except audit_trail.AuditUnavailable as exc:
        logger.error("code_not_approved for run %s not audited: %s", run_id, exc)


Pull = Callable[..., int | None]


def pinned_pull(original: Pull, policy: PinPolicy) -> Pull:
    """Wrap Flower's ``_pull_and_store_message`` with :func:`check_bundle`."""
    from flwr.app import Error, Message
    from flwr.common.constant import ErrorCode

    def pull_and_store_message(**kwargs: Any) -> int | None:
        pulled: list[Message] = []
        receive, get_run, get_fab = kwargs["receive"], kwargs["get_run"], kwargs["get_fab"]
        task_types: dict[int, str] = {}
        node_config = dict(kwargs["node_config"])  # this run's copy (gains BUNDLE_KEY)

        def receiving() -> Any:
            got = receive()
            if got is not None:
                pulled.append(got[0])
            return got

        def getting_run(run_id: int) -> Any:
            run = get_run(run_id)
            task_types[run_id] = str(getattr(run, "primary_task_type", "") or "")
            return run

        def fetching_fab(fab_hash: str, run_id: int) -> Any:
            fab = get_fab(fab_hash, run_id)
            verdict = check_bundle(fab.content, fab_hash, policy)
            if verdict.approved and task_types.get(run_id) == AGENT_TASK:
                verdict = Verdict(verdict.bundle_sha256, False,
                                  "the run asks for an agent app, not the site's ClientApp")
            if verdict.approved and fab.hash_str != verdict.bundle_sha256:
                verdict = Verdict(verdict.bundle_sha256, False,
                                  f"the SuperLink labels it {fab.hash_str}")
            if not verdict.approved:
                audit_refusal(node_config, run_id, verdict)
                raise CodeNotApproved(verdict)
            node_config[BUNDLE_KEY] = verdict.bundle_sha256
            node_config[RUN_ID_KEY] = str(run_id)
            return fab

        try:
            return original(**{**kwargs, "receive": receiving, "get_run": getting_run,
                               "get_fab": fetching_fab, "node_config": node_config})
        except CodeNotApproved as refusal:
            message = pulled[-1]
            run_id = message.metadata.run_id
            logger.error("refused run %s: %s", run_id, refusal.verdict.message(run_id))
            sys.stderr.write(f"fedsurv site: {refusal.verdict.message(run_id)}\n")
            module = sys.modules[PATCHED_MODULE]
            reply = Message(Error(ErrorCode.INVALID_FAB, refusal.verdict.message(run_id)),
                            reply_to=message)
            module._insert_message(reply, kwargs["state"], kwargs["object_store"])
            return run_id

    pull_and_store_message.__wrapped__ = original  # type: ignore[attr-defined]
    pull_and_store_message.fedsurv_pinned = True  # type: ignore[attr-defined]
    return pull_and_store_message


def install(policy: PinPolicy | None = None) -> None:
    """Put the bundle check into this process's Flower SuperNode (idempotent)."""
    import importlib

    module = importlib.import_module(PATCHED_MODULE)
    current = getattr(module, PATCHED_FUNCTION)
    if getattr(current, "fedsurv_pinned", False):
        return
    setattr(module, PATCHED_FUNCTION, pinned_pull(current, policy or PinPolicy()))


def launcher_args(approved_bundles: Iterable[str] = (), clientapps: Iterable[str] = (),
                  via: str | None = None) -> list[str]:
    """``python -m fedsurv.site_node.flower.pinning`` options (before the SuperNode's arguments)."""
    args = [sys.executable, "-m", "fedsurv.site_node.flower.pinning"]
    for digest in approved_bundles:
        args += ["--approve-bundle", digest]
    for reference in clientapps:
        args += ["--allow-clientapp", reference]
    if via:
        args += ["--via", via]
    return args


def main(argv: list[str] | None = None) -> int:
    """Install the check, then run ``flower-supernode`` (or ``--via MODULE``) with the rest."""
    import runpy

    args = list(sys.argv[1:] if argv is None else argv)
    bundles: set[str] = set()
    clientapps = {FEDSURV_CLIENTAPP}
    via = None
    while args and args[0] in ("--approve-bundle", "--allow-clientapp", "--via"):
        flag, value = args[0], args[1] if len(args) > 1 else ""
        args = args[2:]
        if flag == "--approve-bundle":
            bundles.add(value.lower())
        elif flag == "--allow-clientapp":
            clientapps.add(value)
        else:
            via = value
    if "--allow-runtime-dependency-installation" in args:
        sys.stderr.write("fedsurv site: runtime dependency installation is refused\n")
        return 2
    install(PinPolicy(frozenset(clientapps), frozenset(bundles)))
    if via:
        sys.argv = [via, *args]
        runpy.run_module(via, run_name="__main__", alter_sys=True)
        return 0
    from flwr.supernode.cli.flower_supernode import flower_supernode

    sys.argv = ["flower-supernode", *args]
    flower_supernode()
    return 0


if __name__ == "__main__":
    sys.exit(main())
