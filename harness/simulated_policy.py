"""The release policy of simulated sites (``fedsurv simulate``).

By default every simulated site applies :func:`local_policy`: the statistician's own files, so
no cohort or stratum minimum, the spec's strata column allowed and any Cox model, but the
site's rules on endpoints, grid and ``min_sites`` as a real site's defaults. ``--policy FILE``
applies a site's policy instead (a ``site.toml`` whose ``[policy]`` table is read, or a file of
policy keys alone), so a spec can be checked against the network's rules before it is sent.
"""

from __future__ import annotations

from pathlib import Path

from fedsurv.protocol.config_file import describe_error, read_config_file
from fedsurv.protocol.errors import FedsurvError
from fedsurv.protocol.spec import AnalysisSpec
from fedsurv.site_node.policy import ReleasePolicy
from pydantic import ValidationError

LOCAL_POLICY_TEXT = ("local policy: every site accepts any cohort and stratum size, the spec's "
                     "strata column and any Cox model (--policy FILE applies a site policy)")


class PolicyFileError(FedsurvError):
    """A ``--policy`` file that cannot be read or does not validate."""


def local_policy(spec: AnalysisSpec) -> ReleasePolicy:
    """The default policy of simulated sites (see the module docstring)."""
    return ReleasePolicy(
        min_cohort_size=1,
        min_stratum_size=1,
        allowed_strata_columns=[spec.strata.column] if spec.strata else [],
        cox_models="any",
    )


def load_policy_file(path: Path) -> ReleasePolicy:
    """The ``[policy]`` table of ``path`` (or its top level when it has none), validated."""
    data = read_config_file(path, PolicyFileError)
    table = data.get("policy", data)
    prefix = "policy." if "policy" in data else ""
    if not isinstance(table, dict):
        raise PolicyFileError(f"{path}: {prefix or 'policy'} must be a table of keys")
    try:
        return ReleasePolicy.model_validate(table)
    except ValidationError as exc:
        lines = [f"{path}: {prefix}{'.'.join(str(p) for p in error['loc'])}: "
                 f"{describe_error(error, 'deploy/site.example.toml')}"
                 for error in exc.errors()]
        raise PolicyFileError("\n".join(lines)) from None
