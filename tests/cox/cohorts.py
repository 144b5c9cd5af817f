"""Deterministic synthetic cohorts for the Cox tests and benchmark (ties, mixed covariates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fedsurv.protocol.cox_model import CategoricalCovariate, CoxModelSpec, NumericCovariate
from fedsurv.site_node.endpoints import Endpoints

DONORS = ["sibling", "unrelated", "haplo"]


def make_site(
    rng: np.random.Generator,
    n: int,
    *,
    time_scale: float = 200.0,
    max_day: int = 1500,
    donor_levels: list[str] | None = None,
    beta: tuple[float, ...] = (0.03, 0.5, -0.4, -0.7, 0.6, 0.2),
    extra_numeric: int = 0,
) -> Endpoints:
    """``n`` patients with age, donor_type (3 levels), mrd_negative, crs_severe, lab values.

    Proportional hazards with ``beta`` (age, haplo, unrelated, mrd_negative, crs_severe,
    lab_1...), exponential times rounded up to whole days (many ties), uniform censoring.
    """
    levels = donor_levels or DONORS
    age = np.rint(rng.normal(52, 13, n)).astype(np.int64)
    donor = rng.choice(levels, n)
    mrd = rng.random(n) < 0.55
    crs_severe = rng.random(n) < 0.2
    labs = rng.normal(0, 1, (n, extra_numeric))
    lp = (beta[0] * (age - 52) + beta[1] * (donor == "haplo") + beta[2] * (donor == "unrelated")
          + beta[3] * mrd + beta[4] * crs_severe)
    for j in range(extra_numeric):
        lp = lp + beta[5 + j % (len(beta) - 5)] * labs[:, j]
    event_time = np.ceil(rng.exponential(time_scale, n) * np.exp(-lp)).astype(np.int64)
    relapse_time = np.ceil(rng.exponential(time_scale * 1.5, n) * np.exp(lp / 2)).astype(np.int64)
    censor_time = rng.integers(30, max_day, n)
    died = event_time <= censor_time
    os_days = np.where(died, event_time, censor_time)
    remission = rng.random(n) < 0.8
    efs_event = died | ~remission
    efs_days = np.where(remission, os_days, 0)
    relapsed = remission & (relapse_time < os_days)
    cir_days = np.where(relapsed, relapse_time, os_days)
    cir_cause = np.where(relapsed, 1, np.where(died, 2, 0)).astype(np.int8)
    covariates = pd.DataFrame({"age": age, "donor_type": donor, "mrd_negative": mrd.astype(int)})
    for j in range(extra_numeric):
        covariates[f"lab_{j + 1}"] = np.round(labs[:, j], 3)
    flags = {"remission": remission, "crs_severe": crs_severe}
    return Endpoints(
        remission=remission, os_days=os_days, os_event=died, efs_days=efs_days,
        efs_event=efs_event, cir_days=cir_days, cir_cause=cir_cause,
        flags=flags, covariates=covariates,
    )


def model(name: str = "os_cox", endpoint: str = "os", extra_numeric: int = 0, **kw) -> CoxModelSpec:
    """age + donor_type (ref sibling) + mrd_negative + crs_severe (+ lab_j)."""
    covariates = [
        NumericCovariate(column="age"),
        CategoricalCovariate(column="donor_type", levels=DONORS),
        NumericCovariate(column="mrd_negative"),
        NumericCovariate(column="crs_severe"),
        *[NumericCovariate(column=f"lab_{j + 1}") for j in range(extra_numeric)],
    ]
    return CoxModelSpec(name=name, endpoint=endpoint, covariates=covariates, **kw)


def pooled_frame(sites: list[Endpoints], spec: CoxModelSpec) -> pd.DataFrame:
    """The pooled patient-level data a statistician would analyse (one row per patient)."""
    from fedsurv.site_node.cox_sums import design_matrix
    from fedsurv.site_node.tally import SURVIVAL_SOURCES

    cause = {"cir": 1, "nrm": 2}.get(spec.endpoint)
    if cause is None:
        days_attr, event_attr, remitters_only = SURVIVAL_SOURCES[spec.endpoint]
    else:
        remitters_only = True
    parts = []
    for k, site in enumerate(sites):
        x = design_matrix(site, spec)
        frame = pd.DataFrame(x, columns=spec.terms)
        if cause is None:
            frame["T"] = getattr(site, days_attr)
            frame["E"] = getattr(site, event_attr).astype(int)
        else:
            frame["T"] = site.cir_days
            frame["E"] = (site.cir_cause == cause).astype(int)
        frame["site"] = k
        if remitters_only:
            frame = frame[np.asarray(site.remission, dtype=bool)]
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def fixture_sites(data: pd.DataFrame) -> list[Endpoints]:
    """One site per ``site`` value of the R Cox fixture cohort (``tests/fixtures/r/cox``):
    ``T``/``E`` as OS, EFS and CIR time and event, everyone in remission."""
    sites = []
    for _, part in data.groupby("site", sort=True):
        n = len(part)
        sites.append(Endpoints(
            remission=np.ones(n, dtype=bool), os_days=part["T"].to_numpy(),
            os_event=part["E"].to_numpy().astype(bool), efs_days=part["T"].to_numpy(),
            efs_event=part["E"].to_numpy().astype(bool), cir_days=part["T"].to_numpy(),
            cir_cause=np.zeros(n, dtype=np.int8),
            flags={"crs_severe": part["crs_severe"].to_numpy().astype(bool)},
            covariates=part[["age", "donor_type", "mrd_negative", "lab_1"]].reset_index(drop=True),
        ))
    return sites
