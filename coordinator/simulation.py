"""Plain in-memory federation: each file is a site, tallies summed with numpy.

The vectors go through the same layout encoding as the secure path (encode, sum, decode), so
this engine differs from the federated ones only in transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coordinator.analysis import analyse
from coordinator.progress import Progress
from coordinator.results import Results, SiteCounts
from coordinator.secure_sum import TooFewSites
from protocol.layout import TallyLayout
from protocol.spec import AnalysisSpec
from protocol.tally import TallySet
from site_node.endpoints import Endpoints


def site_endpoints(path: Path) -> Endpoints:
    """Load, validate and derive the endpoints of one site file."""
    from site_node.data import load_site_data
    from site_node.endpoints import derive_endpoints

    return derive_endpoints(load_site_data(path))


def site_tallies(path: Path, spec: AnalysisSpec) -> TallySet:
    """Every tally of ``spec`` for one site file."""
    from site_node.tally import tally_site

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

    With ``policy_json`` (a :class:`site_node.policy.ReleasePolicy` as JSON) every site first
    answers the query round as a real site does (:func:`site_node.answer.decide`, the policy
    applied, a fresh ledger per call); refusing sites are left out and reported as
    ``site_refused`` events on ``progress``. Without it every file contributes.
    """
    from coordinator.estimators.cox import run_cox_model
    from site_node.cox_sums import in_process_round_fn
    from site_node.tally import tally_site

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
    results = analyse(spec, sum_vectors(spec, [tally_site(e, spec) for e in endpoints]), sites)
    for model in spec.cox:
        round_fn = in_process_round_fn(endpoints, model, spec.grid)
        results.cox[model.name] = run_cox_model(model, spec.grid, round_fn, spec.ci.level)
    return results


def _query_round(
    spec: AnalysisSpec, files: Sequence[Path], policy_json: str, progress: Progress | None,
) -> tuple[list[Path], dict[str, str]]:
    """Each site's answer to the query round: the accepting files and the refusals."""
    import tempfile

    from site_node.answer import decide

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
