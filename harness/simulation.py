"""Plain in-memory federation: each file is a site, tallies summed with numpy.

The vectors go through the same layout encoding as the secure path (encode, sum, decode), so
this engine differs from the federated ones only in transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fedsurv.coordinator.analysis import analyse
from fedsurv.coordinator.progress import Progress
from fedsurv.coordinator.request.errors import TooFewSites
from fedsurv.coordinator.results import ZPH_FLAG_P, Results, SiteCounts, cox_zph_result
from fedsurv.protocol.cox_model import CoxModelSpec
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec, TimeGrid
from fedsurv.protocol.tally import TallySet
from fedsurv.site_node.endpoints import Endpoints
from fedsurv.stats.cox_result import CoxResult
from fedsurv.stats.cox_zph import ZphTest

__all__ = ["ZPH_FLAG_P", "cox_zph_result", "in_process_cox_zph", "simulate_plain"]


def site_endpoints(path: Path) -> Endpoints:
    """Load, validate and derive the endpoints of one site file."""
    from fedsurv.site_node.data import load_site_data
    from fedsurv.site_node.endpoints import derive_endpoints

    return derive_endpoints(load_site_data(path))


def site_tallies(path: Path, spec: AnalysisSpec) -> TallySet:
    """Every tally of ``spec`` for one site file."""
    from fedsurv.site_node.tally import tally_site

    return tally_site(site_endpoints(path), spec)


def sum_vectors(spec: AnalysisSpec, per_site: Sequence[TallySet]) -> TallySet:
    """Encode each site's tallies in the spec's layout, add the vectors, decode the sum."""
    layout = TallyLayout(spec)
    total = np.sum([layout.encode(t) for t in per_site], axis=0, dtype=np.int64)
    return layout.decode(total)


def simulate_plain(
    spec: AnalysisSpec, files: Sequence[Path], *, policy_json: str | None = None,
    progress: Progress | None = None,
) -> Results:
    """Pooled results of ``files`` (one per site) without any network.

    With ``policy_json`` (a :class:`fedsurv.site_node.policy.ReleasePolicy` as JSON) every site
    first
    answers the query round as a real site does (:func:`fedsurv.site_node.answer.decide`, the policy
    applied, a fresh ledger per call); refusing sites are left out and reported as
    ``site_refused`` events on ``progress``. Without it every file contributes.
    """
    from fedsurv.coordinator.cox_driver import CountedRounds, fit_cox_models, fit_fine_gray_models
    from fedsurv.site_node.cox_answer import in_process_round_fn
    from fedsurv.site_node.tally import tally_site

    refused: dict[str, str] = {}
    if policy_json is not None:
        accepted, refused = _query_round(spec, files, policy_json, progress)
    else:
        accepted = list(files)
    if len(accepted) < spec.min_sites:
        raise TooFewSites(
            f"{len(accepted)} site(s) accepted and contributed, the spec requires "
            f"min_sites={spec.min_sites}: nothing is summed or published"
        )
    endpoints = [site_endpoints(path) for path in accepted]
    sites = SiteCounts(requested=len(files), contributed=len(accepted), refused=refused,
                       contributor_ids=[path.stem for path in accepted])
    tallies = sum_vectors(spec, [tally_site(e, spec) for e in endpoints])
    results = analyse(spec, tallies, sites, engine="plain")
    progress = progress or Progress()

    def rounds_for(model: CoxModelSpec) -> CountedRounds:
        return CountedRounds(in_process_round_fn(endpoints, model, spec.grid))

    results.cox.update(fit_cox_models(spec, len(endpoints), rounds_for, progress,
                                      zph=results.cox_zph))
    fits, warnings = fit_fine_gray_models(spec, len(endpoints), tallies, rounds_for, progress)
    results.fine_gray.update(fits)
    results.warnings.extend(warnings)
    return results


def _query_round(
    spec: AnalysisSpec, files: Sequence[Path], policy_json: str, progress: Progress | None,
) -> tuple[list[Path], dict[str, str]]:
    """Each site's answer to the query round: the accepting files and the refusals."""
    import tempfile

    from fedsurv.site_node.answer import decide

    spec_json = spec.model_dump_json()
    fingerprint = TallyLayout(spec).fingerprint
    accepted: list[Path] = []
    refused: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fedsurv-simulate-") as state:
        for path in files:
            config = {"site-id": path.stem, "data-path": str(path),
                      "state-dir": str(Path(state) / path.stem), "policy": policy_json}
            decision = decide(spec_json, fingerprint, len(files), config)
            if decision.accept:
                accepted.append(path)
            else:
                refused[path.stem] = f"{decision.reason_code}: {decision.message}"
            if progress is not None:
                progress.emit("site_accepted" if decision.accept else "site_refused",
                              site=path.stem, reason_code=decision.reason_code,
                              message=decision.message)
    return accepted, refused


def in_process_cox_zph(
    sites: Sequence[Endpoints], model: CoxModelSpec, grid: TimeGrid, fit: CoxResult
) -> dict[str, list[ZphTest]]:
    """``cox.zph`` tables (km, identity, rank) of a converged fit: the ``zph_counts`` and ``zph``
    rounds a federated run takes (:func:`fedsurv.coordinator.cox_driver.run_cox_zph`), each site's
    vector (:mod:`fedsurv.site_node.zph_sums`) added in process."""
    from fedsurv.coordinator.cox_driver import run_cox_zph
    from fedsurv.site_node.cox_answer import in_process_round_fn

    return run_cox_zph(model, grid, in_process_round_fn(sites, model, grid), fit)
