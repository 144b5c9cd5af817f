"""Result model of one federated Fine-Gray fit: ``results.json`` holds
``"fine_gray": {NAME: FineGrayResult}``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FineGrayCoefficient(_Model):
    """One design column: log subdistribution hazard ratio, crr's sandwich SE, Wald CI, p."""

    coef: float
    se: float
    shr: float
    shr_lower: float
    shr_upper: float
    p_value: float


class FineGrayResult(_Model):
    """A Fine-Gray model (R ``cmprsk::crr``): ``events`` of the cause of interest, ``competing``
    events of the other cause, among ``n`` remitters."""

    name: str
    endpoint: str
    n: int
    events: int
    competing: int
    sites: int
    terms: list[str]
    converged: bool
    rounds: int
    coefficients: dict[str, FineGrayCoefficient] = Field(default_factory=dict)
    covariance: list[list[float]] = Field(default_factory=list, description="sandwich")
    level: float = 0.95
