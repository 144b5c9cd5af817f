"""The vector a site computes when it accepts is the one it contributes: data is read once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fedsurv.harness.inprocess import simulate_federation
from fedsurv.harness.simulation import sum_vectors
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node import answer
from fedsurv.site_node.data import load_site_data
from fedsurv.site_node.endpoints import derive_endpoints
from fedsurv.site_node.tally import tally_site


def test_each_site_loads_its_data_once_and_the_sum_is_exact(
    site_files: list[Path], spec: AnalysisSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: Counter[str] = Counter()
    original = answer.site_endpoints

    def counting(settings: answer.SiteSettings):
        loads[str(settings.data_path)] += 1
        return original(settings)

    monkeypatch.setattr(answer, "site_endpoints", counting)
    outcome = simulate_federation(spec, site_files)
    assert outcome.sites.contributed == len(site_files)
    assert loads == Counter({str(path): 1 for path in site_files})
    expected = sum_vectors(spec, [tally_site(derive_endpoints(load_site_data(p)), spec)
                                  for p in site_files])
    layout = TallyLayout(spec)
    assert np.array_equal(layout.encode(outcome.tallies), layout.encode(expected))
