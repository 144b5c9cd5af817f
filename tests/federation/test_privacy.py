"""The coordinator's view of a round: masked vectors and protocol fields, no site's vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fedsurv.harness.inprocess import InProcessGrid, simulate_federation
from fedsurv.harness.simulation import site_tallies
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.secure_encoding import ANSWER_RECORD, MODULUS_RANGE, SecureEncoding
from fedsurv.protocol.spec import AnalysisSpec
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key


def test_coordinator_sees_no_individual_vector(site_files: list[Path], spec: AnalysisSpec) -> None:
    grids: list[InProcessGrid] = []
    outcome = simulate_federation(spec, site_files, state_root=site_files[0].parent / "st",
                                  grid_out=grids)
    grid = grids[0]
    layout = TallyLayout(spec)
    enc = SecureEncoding.for_layout(layout)
    limbs = [enc.to_limbs(layout.encode(site_tallies(p, spec))) for p in site_files]

    masked = []
    for reply in grid.received:
        assert not reply.has_error()
        records = reply.content.config_records
        if RECORD_KEY_CONFIGS in records and Key.MASKED_PARAMETERS in records[RECORD_KEY_CONFIGS]:
            payload = records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
            arrays = [bytes_to_ndarray(b) for b in payload]
            masked.append(arrays[1])  # arrays[0] is the masked weight factor
            assert not any(len(r) for r in reply.content.array_records.values())
            assert dict(reply.content.metric_records["fitres.num_examples"]) == {"num_examples": 1}
            assert len(reply.content.config_records["fitres.metrics"]) == 0
    assert len(masked) == 4

    for vector in masked:
        assert vector.shape == limbs[0].shape
        assert vector.min() >= 0 and vector.max() < MODULUS_RANGE
        for site in limbs:
            # a masked vector agrees with a site's vector by chance only (p = 2**-40 per value)
            assert np.count_nonzero(vector == site) <= 1
            # and is not a shifted copy of it: the differences are spread over Z_M
            assert np.unique((vector - site) % MODULUS_RANGE).size > 0.99 * vector.size
    # summing the masked vectors alone does not give the sum (private masks remain) ...
    assert not np.array_equal(np.sum(masked, axis=0) % MODULUS_RANGE, np.sum(limbs, axis=0))
    # ... only the unmasked result does
    assert np.array_equal(outcome.vector, enc.decode_sum(np.sum(limbs, axis=0)))


def test_query_answers_carry_protocol_fields_only(
    site_files: list[Path], spec: AnalysisSpec
) -> None:
    grids: list[InProcessGrid] = []
    simulate_federation(spec, site_files, state_root=site_files[0].parent / "st", grid_out=grids)
    answers = [r for r in grids[0].received if ANSWER_RECORD in r.content.config_records]
    assert len(answers) == 4
    for reply in answers:
        assert set(reply.content.config_records) == {ANSWER_RECORD}
        assert not reply.content.array_records and not reply.content.metric_records
        assert set(reply.content.config_records[ANSWER_RECORD]) == {
            "accept", "reason-code", "message", "site-id", "software-version",
            "protocol-version", "min-participants",
        }
