"""``fedsurv demo``: the real deployment on this machine, end to end, in one command.

Starts a TLS SuperLink with SuperNode authentication and one SuperNode per demo site (all on
127.0.0.1), runs the model-study analysis over SecAgg+, writes results and report to
``./fedsurv-demo/`` and stops every process it started, also on Ctrl-C.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fedsurv.protocol.spec import AnalysisSpec

DEFAULT_OUT = Path("fedsurv-demo")
REPO_SPEC = Path(__file__).resolve().parents[2] / "examples" / "model_study.yaml"
DEMO_POLICY = {"min_cohort_size": 1, "cox_models": "any"}
"""The bundled demo sites hold 1-11 patients; the default site policy refuses fewer than 5.
The demo also allows pooled Cox models (`cox_models = "any"`; the default is site-stratified
only, docs/cox.md)."""
STAGE_LABELS = {
    "setup": "1/4 setup",
    "share_keys": "2/4 key sharing",
    "collect_masked_vectors": "3/4 masked vectors",
    "unmask": "4/4 unmasking",
}


def model_study_spec() -> AnalysisSpec:
    """The model-study spec: ``examples/model_study.yaml`` when present, else built here."""
    from fedsurv.protocol.spec import ALL_PROPORTIONS, AnalysisSpec
    from fedsurv.protocol.spec_file import load_spec

    if REPO_SPEC.is_file():
        return load_spec(REPO_SPEC)
    return AnalysisSpec.model_validate({
        "title": "Donor-derived CD19 CAR-T for B-ALL relapsing after allo-HSCT (9 centres)",
        "request_id": "model-study-demo",
        "proportions": list(ALL_PROPORTIONS),
        "survival": ["os", "efs", "os_remission", "efs_remission"],
        "incidence": ["cir", "nrm"],
        "grid": {"bin_days": 1, "horizon_days": 3650},
        "landmarks": [365],
        "min_sites": 3,
    })


def demo(
    data: Annotated[Path | None, typer.Option(
        "--data", help="Directory with one data file per site (default: the 9 bundled demo "
        "sites).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = DEFAULT_OUT,
    spec_path: Annotated[Path | None, typer.Option(
        "--spec", help="Analysis spec (default: the model-study spec).")] = None,
    keep: Annotated[bool, typer.Option(
        "--keep", help="Keep the work directory (keys, process logs) afterwards.")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Give up after this many seconds.")] = 900.0,
) -> None:
    """Run a real federation on this machine (TLS, node auth, SecAgg+) and analyse it."""
    import shutil
    import tempfile

    from rich.console import Console

    from fedsurv.commands.simulate import site_files
    from fedsurv.protocol.errors import FedsurvError
    from fedsurv.protocol.spec_file import load_spec

    console = Console()
    started = time.monotonic()
    spec = load_spec(spec_path) if spec_path else model_study_spec()
    work = Path(tempfile.mkdtemp(prefix="fedsurv-demo-"))
    if data is None:
        from fedsurv.harness.demo_cohort import write_demo_sites

        files = write_demo_sites(work / "data")
    else:
        files = site_files(data)
    if len(files) < spec.min_sites:
        raise FedsurvError(f"{len(files)} site files but the spec needs min_sites="
                           f"{spec.min_sites}")
    out = out.resolve()
    if (out / "results.json").exists():
        (out / "results.json").unlink()
    (out / "progress.jsonl").unlink(missing_ok=True)
    shutil.rmtree(out / "audit", ignore_errors=True)  # fresh audit keys each demo: fresh logs
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    ok = False
    try:
        _run(console, work, files, spec, out, timeout)
        ok = True
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every process started was stopped[/yellow]")
        raise typer.Exit(130) from None
    except (TimeoutError, RuntimeError) as exc:
        raise FedsurvError(f"demo failed: {exc}\n(process logs kept in {work / 'logs'})") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    if (out / "results.json").exists():
        from fedsurv.commands.summary import print_table1

        print_table1(out / "results.json", console)
    console.print(f"[green]done[/green] in {elapsed:.1f} s: {len(files)} sites")
    console.print(f"results: {out / 'results.json'}")
    if (out / "report.html").exists():
        console.print(f"report:  {out / 'report.html'}")
    if keep:
        console.print(f"work directory (keys, logs): {work}")


def _run(console: Any, work: Path, files: list[Path], spec: AnalysisSpec, out: Path,
         timeout: float) -> None:
    from fedsurv.harness.audit_setup import audit_report, audited_sites
    from fedsurv.harness.federation import LocalFederation
    from fedsurv.harness.local_run import run_analysis, sites_from_files
    from fedsurv.protocol.errors import FedsurvError

    sites = sites_from_files(files, work / "state", policy=DEMO_POLICY)
    audit = audited_sites(sites, work / "audit-keys", out / "audit")
    console.print(f"[dim]demo sites accept cohorts of any size (policy {DEMO_POLICY}; a real "
                  "site's default refuses fewer than 5 patients)[/dim]")
    t0 = time.monotonic()
    with console.status(f"starting SuperLink and {len(sites)} SuperNodes (TLS, node auth)...",
                        spinner="dots") as status:
        federation = LocalFederation(work, sites)
        with federation:
            t = federation.timings
            console.print(
                f"federation up in {time.monotonic() - t0:.1f} s: SuperLink "
                f"{federation.address} (TLS, loopback), {len(sites)} registered SuperNodes via "
                f"the Fleet-only proxy {federation.fleet_address} "
                f"[dim](superlink {t.superlink:.1f} s, register {t.register:.1f} s, "
                f"supernodes {t.supernodes:.1f} s)[/dim]"
            )
            status.update("submitting the analysis...")
            view = _ProgressView(console, status, len(sites))
            outcome = run_analysis(federation, spec, out, on_event=view.show, timeout=timeout,
                                   options=audit.run_config())
            console.print(f"run {outcome.run_id} {outcome.status} in {outcome.elapsed:.1f} s")
            status.update("stopping the federation...")
    lines, verdict = audit_report(audit)
    for line in lines[:-1]:
        console.print(line, style="dim", markup=False, highlight=False)
    console.print(lines[-1], style="green" if verdict.ok else "red", markup=False)
    if not verdict.ok:
        raise FedsurvError("the demo's audit logs do not verify or cross-check (see above)")


class _ProgressView:
    """Turns progress events into a status line and a few printed milestones (typed events,
    :mod:`fedsurv.coordinator.progress_events`: an unknown event name or field raises)."""

    def __init__(self, console: Any, status: Any, sites: int) -> None:
        self.console, self.status, self.sites = console, status, sites
        self.answers = 0

    def show(self, record: dict[str, Any]) -> None:
        from rich.markup import escape

        from fedsurv.coordinator import progress_events as ev

        event = ev.parse_event(record)
        at = f"[dim]{event.elapsed or 0:6.1f} s[/dim]"
        match event:
            case ev.QuerySent(sites=sites):
                self.status.update(f"query sent to {sites} sites, waiting for answers")
            case ev.SiteAccepted(site=site):
                self._answer(at, site, "[green]accepted[/green]")
            case ev.SiteRefused(site=site, reason_code=code, message=message):
                self._answer(at, site, f"[red]refused[/red] ({escape(code)}: {escape(message)})")
            case ev.SiteNoAnswer(site=site):
                self._answer(at, site, "[yellow]no answer[/yellow]")
            case ev.SecaggStarted(participants=participants):
                self.console.print(f"{at} SecAgg+ with {participants} sites")
                self.status.update("SecAgg+ 1/4 setup")
            case ev.StageDone(stage=stage):
                label = STAGE_LABELS.get(stage, stage)
                self.console.print(f"{at} SecAgg+ {label}: {event.replied}/{event.sent} replied "
                                   f"({event.seconds:.1f} s)")
                self.status.update(f"SecAgg+ after {label}")
            case ev.SiteDropped() | ev.AttemptAborted() | ev.RequestFailed():
                site = event.site if isinstance(event, ev.SiteDropped) else ""
                self.console.print(f"{at} [yellow]{event.event.replace('_', ' ')}[/yellow]: "
                                   f"{escape(site)} {escape(event.reason)}")
            case ev.RequestDone(contributed=contributed):
                self.console.print(f"{at} secure sum over {contributed} sites done")
                self.status.update("pooled estimates...")
            case ev.ResultsPublished():
                self.console.print(f"{at} results published")
                self.status.update("finishing the run...")
            case ev.ReportWritten(seconds=seconds):
                self.console.print(f"report rendered ({seconds:.1f} s)")
            case ev.ReportFailed(reason=reason, out_dir=out_dir):
                self.console.print(f"[yellow]the report could not be rendered[/yellow] "
                                   f"({escape(reason)}); retry with `fedsurv report "
                                   f"{escape(str(out_dir))}`", highlight=False)

    def _answer(self, at: str, site: str, verdict: str) -> None:
        from rich.markup import escape

        self.answers += 1
        self.console.print(f"{at} site {escape(site)} {verdict}")
        self.status.update(f"answers {self.answers}/{self.sites}")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
