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


def site_tallies(path: Path, spec: AnalysisSpec) -> TallySet:
    """Load, validate, derive endpoints and tally one site file."""
    from site_node.data import load_site_data
    from site_node.endpoints import derive_endpoints
    from site_node.tally import tally_site

    return tally_site(derive_endpoints(load_site_data(path)), spec)


def sum_vectors(spec: AnalysisSpec, per_site: Sequence[TallySet]) -> TallySet:
    """Encode each site's tallies in the spec's layout, add the vectors, decode the sum."""
    layout = TallyLayout(spec)
    total = np.sum([layout.encode(t) for t in per_site], axis=0, dtype=np.int64)
    return layout.decode(total)


def simulate_plain(spec: AnalysisSpec, files: Sequence[Path]) -> Results:
    """Pooled results of ``files`` (one per site) without any network."""
    per_site = [site_tallies(path, spec) for path in files]
    if len(per_site) < spec.min_sites:
        raise TooFewSites(
            f"{len(per_site)} site(s) contributed, the spec requires min_sites={spec.min_sites}"
        )
    sites = SiteCounts(requested=len(files), contributed=len(files),
                       contributor_ids=[path.stem for path in files])
    return analyse(spec, sum_vectors(spec, per_site), sites)
