"""Plain in-memory federation: each file is a site, tallies summed with numpy.

The vectors go through the same layout encoding as the secure path (encode, sum, decode), so
this engine differs from the federated ones only in transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coordinator.analysis import analyse
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


def simulate_plain(spec: AnalysisSpec, files: Sequence[Path]) -> Results:
    """Pooled results of ``files`` (one per site) without any network."""
    from coordinator.estimators.cox import run_cox_model
    from site_node.cox_sums import in_process_round_fn
    from site_node.tally import tally_site

    endpoints = [site_endpoints(path) for path in files]
    if len(endpoints) < spec.min_sites:
        raise TooFewSites(
            f"{len(endpoints)} site(s) contributed, the spec requires min_sites={spec.min_sites}"
        )
    sites = SiteCounts(requested=len(files), contributed=len(files),
                       contributor_ids=[path.stem for path in files])
    results = analyse(spec, sum_vectors(spec, [tally_site(e, spec) for e in endpoints]), sites,
                      engine="plain")
    for model in spec.cox:
        round_fn = in_process_round_fn(endpoints, model, spec.grid)
        results.cox[model.name] = run_cox_model(model, spec.grid, round_fn, spec.ci.level)
    return results
