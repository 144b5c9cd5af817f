"""``fedsurv run SPEC --out DIR``: submit one analysis to the running coordinator, show progress.

The spec is validated here, shipped as data in a thin bundle (no code, see
:mod:`fedsurv.coordinator.deployment.fab`) with ``flwr run`` to the SuperLink that
``fedsurv coordinator start`` runs, and the ServerApp's ``progress.jsonl`` in DIR is followed
live (or printed as JSON lines with ``--json``). The exit code says how it ended.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fedsurv.coordinator import progress_events as ev
from fedsurv.coordinator.progress_events import EventBase, parse_event
from fedsurv.protocol.errors import FedsurvError

if TYPE_CHECKING:
    from fedsurv.coordinator.config import CoordinatorConfig
    from fedsurv.protocol.spec import AnalysisSpec

EXIT_OK, EXIT_TOO_FEW_SITES, EXIT_REFUSED, EXIT_INFRASTRUCTURE = 0, 3, 4, 5
EXIT_CODES_HELP = (
    "Exit codes: 0 results published; 2 usage error (bad spec, config or options); "
    "3 too few sites took part or survived (nothing published); 4 refused: too many sites "
    "refused the request (reason codes listed; nothing published); 5 infrastructure failure "
    "(coordinator unreachable, the run failed or timed out)."
)
STAGES = {
    "setup": "SecAgg+ 1/4 setup",
    "share_keys": "SecAgg+ 2/4 key sharing",
    "collect_masked_vectors": "SecAgg+ 3/4 masked vectors",
    "unmask": "SecAgg+ 4/4 unmasking",
}
NEXT_STAGE = {"setup": "share_keys", "share_keys": "collect_masked_vectors",
              "collect_masked_vectors": "unmask", "unmask": "decoding"}


class RunError(FedsurvError):
    """A run that ended without published results; ``exit_code`` says why."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class SiteStatus:
    status: str  # accepted | awaiting approval | refused | no answer | dropped | offline |
    # contributed
    detail: str = ""


@dataclass
class RunProgress:
    """The run as the progress events tell it (no data: protocol fields only)."""

    min_sites: int
    started: float = field(default_factory=time.monotonic)
    stage: str = "submitting to the coordinator"
    nodes: int | None = None
    sites: dict[str, SiteStatus] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    secagg_started: bool = False
    secagg_done: bool = False
    failed: str | None = None
    required_missing: str | None = None
    report_failed: str | None = None
    done: bool = False

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one ``progress.jsonl`` event into the state (typed: an unknown event name or
        field raises, :mod:`fedsurv.coordinator.progress_events`)."""
        self.events.append(event)
        self._fold(parse_event(event))

    def _fold(self, event: EventBase) -> None:
        match event:
            case ev.RequestStarted():
                self.stage = "waiting for sites to connect"
            case ev.WaitingForSites(missing=missing):
                self.stage = (f"waiting for sites to connect: {event.connected} of "
                              f"{event.expected} connected; missing "
                              f"{', '.join(missing) or 'unknown'} ({event.seconds_left} s left)")
                for missing_site in missing:
                    self.sites[missing_site] = SiteStatus("offline", "not connected yet")
            case ev.SiteOffline(site=site):
                self.sites[site] = SiteStatus("offline", event.message)
            case ev.SiteAwaitingApproval(site=site, command=command):
                self.sites[site] = SiteStatus(
                    "awaiting approval", f"steward: {command} ({event.seconds_left} s left)")
                self.stage = f"awaiting approval at {site} (steward: {command})"
            case ev.NodesConnected(nodes=nodes):
                self.nodes = nodes
                self.stage = f"{nodes} site(s) connected"
            case ev.QuerySent(sites=sites):
                self.stage = f"query sent to {sites} site(s); waiting for answers"
            case ev.SiteAccepted(site=site):
                self.sites[site] = SiteStatus("accepted")
            case ev.SiteRefused(site=site, reason_code=code, message=message):
                self.sites[site] = SiteStatus("refused",
                                              f"{code}: {message.removeprefix(code + ': ')}")
            case ev.SiteNoAnswer(site=site):
                self.sites[site] = SiteStatus("no answer", "no reply to the query")
            case ev.SiteExcluded(site=site):  # a node not on the allow-list
                self.sites[site] = SiteStatus("excluded", event.message)
            case ev.SecaggStarted():
                self.secagg_started = True
                self.stage = (f"{STAGES['setup']} (attempt {event.attempt}, "
                              f"{event.participants} sites)")
            case ev.StageDone(stage=stage):
                following = NEXT_STAGE.get(stage, "")
                self.stage = STAGES.get(following, following or "decoding")
            case ev.SiteDropped(site=site):
                self.sites[site] = SiteStatus("dropped",
                                              f"lost during {event.stage}: {event.reason}")
            case ev.AttemptAborted():
                self.stage = f"attempt {event.attempt} aborted: {event.reason}"
            case ev.SecaggDone():
                self.secagg_done = True
                self.stage = "decoding the secure sum"
            case ev.RequestDone():
                for status in self.sites.values():
                    if status.status == "accepted":
                        status.status = "contributed"
                self.stage = "pooled estimates"
            case ev.RequestFailed(reason=reason):
                self.failed = reason
                if reason.startswith("required_sites"):
                    self.required_missing = reason
                self.stage = "failed"
            case ev.CoxRoundStarted():
                self.stage = f"Cox model {event.model}: round {event.round} ({event.kind})"
            case ev.CoxModelStarted():
                self.stage = f"Cox model {event.model} started"
            case ev.CoxModelDone():
                self.stage = f"Cox model {event.model} {event.status}"
            case ev.CoxModelFailed():
                self.stage = f"Cox model {event.model} failed: {event.reason}"
            case ev.CoxRoundRefused(site=site) if site in self.sites:
                status = self.sites[site]
                status.detail = (f"{status.detail}; Cox {event.model}: "
                                 f"{event.reason_code}").lstrip("; ")
            case ev.ResultsPublished():
                self.stage = "results published; rendering tables, plots and report"
            case ev.ReportWritten():
                self.done = True
                self.stage = "results and report written"
            case ev.ReportFailed():
                self.done = True
                self.report_failed = event.reason
                self.stage = "results published; the report could not be rendered"

    def refused(self) -> dict[str, str]:
        return {s: v.detail for s, v in sorted(self.sites.items()) if v.status == "refused"}

    def dropped(self) -> list[str]:
        return sorted(s for s, v in self.sites.items() if v.status == "dropped")

    def offline(self) -> list[str]:
        return sorted(s for s, v in self.sites.items() if v.status == "offline")

    def accounts(self) -> dict[str, dict[str, str]]:
        """Every site seen in the run: status and detail."""
        return {s: {"status": v.status, "detail": v.detail} for s, v in sorted(self.sites.items())}

    def render(self) -> Any:
        """A rich renderable: stage, elapsed time, one row per site."""
        from rich.table import Table

        table = Table(title=f"{self.stage}  [dim]({time.monotonic() - self.started:.0f} s)[/dim]",
                      title_justify="left", expand=False)
        table.add_column("site")
        table.add_column("status")
        table.add_column("detail", overflow="fold", max_width=70)
        colours = {"accepted": "cyan", "contributed": "green", "refused": "red",
                   "dropped": "yellow", "no answer": "yellow", "excluded": "red",
                   "offline": "yellow", "awaiting approval": "magenta"}
        for name, status in sorted(list(self.sites.items())):
            colour = colours.get(status.status, "white")
            table.add_row(name, f"[{colour}]{status.status}[/{colour}]", status.detail)
        return table


def classify(progress: RunProgress, failure: str | None, out_dir: Path) -> tuple[int, str]:
    """(exit code, message) of a finished run. ``failure``: why the Flower run failed."""
    refused = progress.refused()
    listed = "; ".join(f"{site} ({reason})" for site, reason in refused.items())
    if progress.required_missing is not None:
        return EXIT_TOO_FEW_SITES, progress.required_missing
    if failure is None:
        if (out_dir / "results.json").is_file():
            return EXIT_OK, f"results published in {out_dir}"
        return EXIT_INFRASTRUCTURE, f"the run finished but wrote no results.json in {out_dir}"
    if progress.failed is None or progress.secagg_done:
        return EXIT_INFRASTRUCTURE, f"the run failed: {failure}"
    answered = sum(1 for s in progress.sites.values()
                   if s.status not in ("no answer", "excluded"))
    if not progress.secagg_started and refused and answered >= progress.min_sites:
        return EXIT_REFUSED, (f"{len(refused)} site(s) refused the request: {listed}. "
                              f"{progress.failed}")
    extra = f" Refused: {listed}." if refused else ""
    return EXIT_TOO_FEW_SITES, f"too few sites: {progress.failed}.{extra}"


def run_options(config: CoordinatorConfig | None, expected_sites: int | None,
                stage_timeout: float | None, query_timeout: float | None,
                node_wait_timeout: float | None,
                approval_wait: float | None = None) -> dict[str, Any]:
    """ServerApp run-config options: command line, else the config's ``[run]``."""
    from fedsurv.coordinator.config import RunDefaults

    defaults = config.run if config is not None else RunDefaults()
    expected = defaults.expected_sites if expected_sites is None else expected_sites
    if expected == 0 and config is not None:
        from fedsurv.coordinator.allow_list import read_allow_list

        expected = len(read_allow_list(config.allow_list))
    from fedsurv.coordinator.run_config import RunConfig

    audit: dict[str, str] = {}
    if config is not None and config.audit is not None:
        import getpass

        audit = {"audit_log": str(config.audit.log), "audit_key": str(config.audit.signing_key),
                 "requester": getpass.getuser()}
    return RunConfig(
        expected_sites=int(expected),
        stage_timeout=float(stage_timeout or defaults.stage_timeout),
        query_timeout=float(query_timeout or defaults.query_timeout),
        node_wait_timeout=float(defaults.node_wait_timeout if node_wait_timeout is None
                                else node_wait_timeout),
        approval_wait=float(defaults.approval_wait if approval_wait is None else approval_wait),
        **audit,
    ).flower()


def default_out_dir(config: CoordinatorConfig | None, spec: AnalysisSpec, spec_path: Path) -> Path:
    root = config.output_root if config is not None and config.output_root else Path("runs")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{spec.request_id or spec_path.stem}-{stamp}"


def _load_config(path: Path | None) -> CoordinatorConfig:
    from fedsurv.coordinator.config import coordinator_config_path, load_coordinator_config

    return load_coordinator_config(coordinator_config_path(path))


def _reachable(config: CoordinatorConfig) -> None:
    from fedsurv.coordinator.config import CoordinatorUnavailable
    from fedsurv.coordinator.deployment.processes import port_open

    host, port = config.local_address.rsplit(":", 1)
    if not (config.flwr_home / "config.toml").is_file():
        raise CoordinatorUnavailable(
            f"no coordinator connection in {config.flwr_home} (start the coordinator with "
            "`fedsurv coordinator start --config ...` first)")
    if not port_open(int(port), host.strip("[]")):
        raise CoordinatorUnavailable(f"the coordinator at {config.local_address} is not "
                                     "reachable (is `fedsurv coordinator start` running?)")


def completed_request(config: CoordinatorConfig, spec: AnalysisSpec) -> str | None:
    """Why ``spec`` must not be sent again: its request id already completed a secure sum.

    The coordinator's own audit log knows (a ``round_completed`` record of the same audit
    request id), so no site is queried only to answer ``already_contributed``.
    """
    from fedsurv.protocol.audit.records import RecordKind
    from fedsurv.protocol.audit.requests import audit_request_id
    from fedsurv.protocol.audit.verify import parse_line

    if config.audit is None or config.audit.log is None or not config.audit.log.is_file():
        return None
    wanted = audit_request_id(spec.request_id, spec.sha256())
    with config.audit.log.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            _, record, _ = parse_line(raw, number)
            if (record is not None and record.kind == RecordKind.ROUND_COMPLETED
                    and record.body.get("request_id") == wanted):
                return (f"request '{wanted}' already completed a secure sum on {record.time} "
                        f"({config.audit.log}, record {record.seq}): every site would refuse "
                        "it (already_contributed). Give the spec a new request_id.")
    return None


def submit(config: CoordinatorConfig, workdir: Path, spec: AnalysisSpec, out_dir: Path,
           options: dict[str, Any], on_event: Any, timeout: float) -> str | None:
    """Run the analysis through ``flwr run``; None when it completed, else why it failed."""
    from fedsurv.coordinator.deployment.processes import Supervisor, flower_env
    from fedsurv.coordinator.deployment.runner import RunFailed
    from fedsurv.coordinator.deployment.submit import submit_analysis
    from fedsurv.coordinator.node_names import ROSTER_KEY, roster_from_registrations, roster_json

    # sites are named by the enrolled names of their node keys, never by what they report
    roster = roster_from_registrations(config.registrations)
    options = {**options, ROSTER_KEY: roster_json(roster)}
    supervisor = Supervisor(workdir / "logs", flower_env(FLWR_HOME=str(config.flwr_home)))
    try:
        submit_analysis(supervisor, workdir, spec, out_dir, options=options,
                        on_event=on_event, timeout=timeout)
    except RunFailed as exc:
        if "did not finish within" in str(exc):  # --timeout: do not leave the run going
            _stop_run(supervisor)
        return str(exc)
    except KeyboardInterrupt:
        _stop_run(supervisor)
        raise
    finally:
        supervisor.stop_all()
    return None


def _stop_run(supervisor: Any) -> None:
    """Ask the SuperLink to stop the run ``flwr run`` started (Ctrl-C)."""
    import contextlib
    import re

    from fedsurv.coordinator.deployment.runner import CONNECTION, flwr_cli

    for process in supervisor.processes:
        match = re.search(r"Successfully started run (\d+)", process.log_text())
        if match:
            with contextlib.suppress(RuntimeError, OSError):
                flwr_cli(supervisor.env, "stop", match.group(1), CONNECTION, timeout=20)


def run(
    spec_path: Annotated[Path, typer.Argument(help="Analysis spec (YAML or JSON).")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Output directory (default: <output_root>/<request_id>-<time>).")] = None,
    config_path: Annotated[Path | None, typer.Option(
        "--config", help="coordinator.toml (default: $FEDSURV_COORDINATOR_CONFIG, "
        "./coordinator.toml).")] = None,
    json_lines: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object per progress event (and a final "
        "'run_finished' object) instead of the live display.")] = False,
    expected_sites: Annotated[int | None, typer.Option(
        "--expected-sites", help="Sites to wait for before querying (default: every enrolled "
        "site).")] = None,
    node_wait_timeout: Annotated[float | None, typer.Option(
        "--node-wait-timeout", help="Seconds to wait for those sites.")] = None,
    query_timeout: Annotated[float | None, typer.Option(
        "--query-timeout", help="Seconds to wait for the sites' answers.")] = None,
    stage_timeout: Annotated[float | None, typer.Option(
        "--stage-timeout", help="Seconds per SecAgg+ stage before a site counts as dropped.")]
    = None,
    approval_wait: Annotated[float | None, typer.Option(
        "--approval-wait", help="Seconds to wait for sites with manual approval to be "
        "approved by their data steward (shown live with the steward's command) before the "
        "secure sum starts without them (default: [run] approval_wait, 0).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds.")]
    = 3600.0,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite results already in the output directory.")] = False,
) -> None:
    """Run an analysis on the study network: validate SPEC, submit it, follow its progress.

    Run this on the coordinator host (the coordinator writes the outputs into --out).
    Exit codes are listed below the options.
    """
    from fedsurv.protocol.spec_file import load_spec

    spec = load_spec(spec_path)
    config = _load_config(config_path)
    options = run_options(config, expected_sites, stage_timeout, query_timeout,
                          node_wait_timeout, approval_wait)
    out_dir = (out or default_out_dir(config, spec, spec_path)).expanduser().resolve()
    if (out_dir / "results.json").exists() and not force:
        raise FedsurvError(f"{out_dir} already holds results.json: choose another --out or "
                           "pass --force")
    if (done := completed_request(config, spec)) is not None:
        raise FedsurvError(done)
    _reachable(config)
    for stale in ("results.json", "progress.jsonl"):
        (out_dir / stale).unlink(missing_ok=True)
    code, message = execute(config, spec, out_dir, options, json_lines, timeout)
    if code != EXIT_OK:
        raise RunError(message, code)


def execute(config: CoordinatorConfig, spec: AnalysisSpec, out_dir: Path,
            options: dict[str, Any], json_lines: bool, timeout: float) -> tuple[int, str]:
    """Submit, display progress, classify; prints the outcome and returns (code, message)."""
    from rich.console import Console
    from rich.live import Live

    progress = RunProgress(min_sites=spec.min_sites)
    err = Console(stderr=True)
    workdir = Path(tempfile.mkdtemp(prefix="fedsurv-run-"))
    previous = signal.signal(signal.SIGTERM, _interrupt)

    def on_event(event: dict[str, Any]) -> None:
        progress.apply(event)
        if json_lines:
            sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
            sys.stdout.flush()

    err.print(f"submitting {spec.title or 'analysis'} (min_sites {spec.min_sites}, expected "
              f"sites {options['expected-sites']}) to {config.local_address}; outputs -> "
              f"{out_dir}", highlight=False)
    try:
        if json_lines:
            failure = submit(config, workdir, spec, out_dir, options, on_event, timeout)
        else:
            console = Console()
            with Live(get_renderable=progress.render, console=console, refresh_per_second=4,
                      transient=False):
                failure = submit(config, workdir, spec, out_dir, options, on_event, timeout)
            if not console.is_terminal:
                console.line()
    except KeyboardInterrupt:
        err.print("interrupted: the run was stopped")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    code, message = classify(progress, failure, out_dir)
    report = out_dir / "report.html"
    if code == EXIT_INFRASTRUCTURE:
        message += f" (logs in {workdir / 'logs'})"
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if json_lines:
        summary = {"event": "run_finished", "exit_code": code, "message": message,
                   "elapsed": round(time.monotonic() - progress.started, 3),
                   "refused": progress.refused(), "dropped": progress.dropped(),
                   "offline": progress.offline(), "sites": progress.accounts(),
                   "results": str(out_dir / "results.json") if code == EXIT_OK else None,
                   "report": str(report) if code == EXIT_OK and report.exists() else None}
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()
    elif code == EXIT_OK:
        from fedsurv.commands.summary import print_table1

        console = Console()
        print_table1(out_dir / "results.json", console)
        _missing_sites_banner(out_dir / "results.json", err)
        console.print(f"[green]done[/green] in {time.monotonic() - progress.started:.1f} s")
        typer.echo(f"results: {out_dir / 'results.json'}")  # never wrapped: copyable paths
        if progress.report_failed is not None:
            from rich.markup import escape

            err.print(f"[yellow]the report could not be rendered[/yellow] "
                      f"({escape(progress.report_failed)}); the results are published. Try "
                      f"again with `fedsurv report {escape(str(out_dir))}`.", highlight=False)
        elif report.exists():
            typer.echo(f"report:  {report}")
    return code, message


def _missing_sites_banner(results_path: Path, err: Any) -> None:
    """Say prominently which enrolled sites are not behind the published result."""
    from rich.markup import escape

    from fedsurv.coordinator.results import Results

    results = Results.model_validate_json(results_path.read_text(encoding="utf-8"))
    sites = results.sites
    missing = {name: account for name, account in sites.status.items()
               if account.state in ("dropped", "offline")}
    if not missing:
        return
    total = sites.enrolled or (sites.requested + len(sites.offline))
    curves = [*results.survival.values(), *results.incidence.values()]
    patients = curves[0].n if curves else None
    behind = f" ({patients} patients)" if patients is not None else ""
    err.print(f"[bold yellow]WARNING: only {sites.contributed} of {total} sites{behind} are "
              "behind this result; the others did not contribute:[/bold yellow]",
              highlight=False)
    for name, account in missing.items():
        how = (f"dropped during {account.stage} after {account.seconds} s: {account.detail}"
               if account.state == "dropped" else f"offline: {account.detail}")
        err.print(f"[yellow]  {escape(name)}: {escape(how)}[/yellow]", highlight=False)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.command("run", epilog=EXIT_CODES_HELP)(run)
