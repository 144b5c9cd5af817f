"""Why a request publishes nothing: the errors of the request core and its transport."""

from __future__ import annotations

from collections.abc import Mapping

from fedsurv.protocol.errors import FedsurvError


class TooFewSites(FedsurvError):
    """Fewer sites accepted or contributed than the spec's ``min_sites``: nothing published."""

    exit_code = 3


class SecureSumFailed(FedsurvError):
    """The secure aggregation did not complete (after the allowed retry)."""

    exit_code = 3


class RequiredSitesMissing(TooFewSites):
    """A site the spec's ``required_sites`` names did not (or cannot) contribute: nothing is
    published. ``missing``: site -> why (offline, refused, dropped)."""

    def __init__(self, missing: Mapping[str, str], when: str) -> None:
        listed = "; ".join(f"{site} ({why})" for site, why in sorted(missing.items()))
        super().__init__(f"required_sites: {len(missing)} required site(s) {when}: {listed}; "
                         "nothing is published")
        self.missing = dict(missing)


class SetupAborted(FedsurvError):
    """Sites lost during setup or key sharing: no masked vector was sent (retry possible)."""

    def __init__(self, message: str, lost: dict[int, str], stage: str = "") -> None:
        super().__init__(message)
        self.lost = lost
        self.stage = stage


class ContributorsLost(TooFewSites):
    """Fewer masked vectors than required arrived; the sum was not unmasked."""

    def __init__(self, message: str, lost: dict[int, str]) -> None:
        super().__init__(message)
        self.lost = lost


# -- raised by a transport (:class:`fedsurv.coordinator.request.port.Federation`) ----------


class SetupDropout(FedsurvError):
    """Sites lost before masked vectors were collected; the attempt can be retried."""

    def __init__(self, stage: str, lost: dict[int, str]) -> None:
        super().__init__(f"{len(lost)} site(s) lost during SecAgg+ {stage}")
        self.stage = stage
        self.lost = lost


class TooFewContributors(FedsurvError):
    """Fewer masked vectors than required were collected; the sum is not unmasked."""

    exit_code = 3

    def __init__(self, contributors: set[int], lost: dict[int, str], required: int) -> None:
        super().__init__(
            f"only {len(contributors)} site(s) contributed a masked vector, the spec requires "
            f"{required}; the sum was not unmasked"
        )
        self.contributors = contributors
        self.lost = lost
