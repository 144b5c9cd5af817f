"""What a release *is*, for the differencing guard: components, independent of the request.

A component names one piece of information a site's vector carries, whatever the request id,
title, grid or the other analyses of the spec:

* ``tally:<kind>:<name>:<strata column>:<stratum>`` for every proportion, event block and
  log-rank statistic of the layout (any bin width and horizon: a coarse grid is a function of a
  fine one, so two grids of one endpoint over different site sets can be differenced too);
* ``cox:<sha256>`` for a Cox model: endpoint, covariates, ties and site stratification (not
  its name, round budget or tolerance).

Two releases overlap when they share a component; :func:`fedsurv.site_node.ledger.release_conflict`
applies the rule. The ``sites`` slot (always 1) is not a component.
"""

from __future__ import annotations

import hashlib
import json

from fedsurv.protocol.cox_model import CoxModelSpec
from fedsurv.protocol.layout import TallyLayout
from fedsurv.protocol.spec import AnalysisSpec


def components(spec: AnalysisSpec) -> list[str]:
    """The tally components of ``spec``'s layout (sorted, distinct)."""
    column = spec.strata.column.lower() if spec.strata else ""
    return sorted({f"tally:{slot.kind}:{slot.name}:{column}:{slot.stratum}"
                   for slot in TallyLayout(spec).slots if slot.kind != "sites"})


def cox_component(model: CoxModelSpec) -> str:
    """The component of one Cox model (see module docstring)."""
    content = model.model_dump(mode="json", exclude={"name", "max_rounds", "tol"})
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"cox:{digest}"
