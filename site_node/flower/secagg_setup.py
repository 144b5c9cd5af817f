"""The SecAgg+ setup stage as a site checks it, for the tally sum and every Cox round alike."""

from __future__ import annotations

from typing import cast

from fedsurv.protocol.secure_encoding import MAX_SITES, secagg_parameters
from fedsurv.site_node.flower.state import RoundRefused
from flwr.app import ConfigRecord
from flwr.common.secure_aggregation.secaggplus_constants import Key


def check_setup(configs: ConfigRecord, min_participants: int) -> None:
    """Exact SecAgg+ parameters (an exact sum), and a sample of at least the site's
    ``min-participants`` and at most :data:`MAX_SITES`."""
    expected = secagg_parameters()
    announced = {
        "max_weight": configs.get(Key.MAX_WEIGHT),
        "clipping_range": configs.get(Key.CLIPPING_RANGE),
        "quantization_range": configs.get(Key.TARGET_RANGE),
        "modulus_range": configs.get(Key.MOD_RANGE),
    }
    if announced != expected:
        raise RoundRefused("protocol_mismatch", f"SecAgg+ parameters {announced} would not give an "
                                                f"exact sum; expected {expected}")
    sample = int(cast(int, configs[Key.SAMPLE_NUMBER]))
    if sample < min_participants:
        raise RoundRefused("too_few_participants", f"{sample} participant(s) announced; this "
                                                   f"site requires {min_participants}")
    if sample > MAX_SITES:
        raise RoundRefused("value_out_of_range", f"{sample} participants exceed the encoding's "
                                                 f"{MAX_SITES}")
