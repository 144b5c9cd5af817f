"""The differencing rule itself: what counts as the same release
(fedsurv.site_node.release_guard)."""

from __future__ import annotations

from fedsurv.protocol.cox_model import CoxModelSpec, NumericCovariate
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.ledger import release_conflict
from fedsurv.site_node.release_guard import components, cox_component


def test_components_ignore_request_title_and_grid() -> None:
    one = AnalysisSpec(request_id="a", title="x", survival=["os"], proportions=["remission"],
                       grid={"bin_days": 1, "horizon_days": 1500})
    other = one.model_copy(update={"request_id": "b", "title": "y",
                                   "grid": one.grid.model_copy(update={"bin_days": 30})})
    assert components(one) == components(other)
    assert set(components(AnalysisSpec(survival=["os"]))) < set(components(one))
    assert not set(components(AnalysisSpec(survival=["efs"]))) & set(components(one))


def test_cox_component_ignores_name_and_round_budget() -> None:
    model = CoxModelSpec(name="m1", endpoint="os", covariates=[NumericCovariate(column="age")],
                         stratify_by_site=True)
    assert cox_component(model) == cox_component(
        model.model_copy(update={"name": "m2", "max_rounds": 100}))
    assert cox_component(model) != cox_component(model.model_copy(update={"endpoint": "efs"}))


def test_rule() -> None:
    earlier = [{"request_id": "r1", "components": ["tally:a"], "participants_named": ["x", "y"]}]
    assert release_conflict(earlier, "r1", ["tally:a"], ["x"], 1) is None  # same request
    assert release_conflict(earlier, "r2", ["tally:b"], ["x"], 1) is None  # no overlap
    assert release_conflict(earlier, "r2", ["tally:a"], ["y", "x"], 1).reason_code \
        == "analysis_already_released"
    assert release_conflict(earlier, "r2", ["tally:a"], ["y", "x"], 2) is None  # budget
    assert release_conflict(earlier, "r2", ["tally:a"], ["x", "y", "z"], 2).reason_code \
        == "participant_set_changed"
    assert release_conflict(earlier, "r2", ["tally:a"], None, 1).reason_code \
        == "analysis_already_released"  # the query round: participants not known yet
