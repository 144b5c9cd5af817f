"""Audit keys and logs for a local federation (demo, in-process engine, tests), and the verdict.

    audit = provision_audit(work / "audit-keys", ["01", "02", "03"], log_dir=out / "audit")
    node_config = {..., **audit.site_config("01")}      # audit-log, audit-key
    run_config = {..., **audit.run_config()}             # the coordinator's audit-log, audit-key
    ...
    verdict = audit.verify()
    print(verdict.line())        # "audit: 4 logs verified, cross-check clean"

Private keys go to ``key_dir`` (0600); logs and public keys to ``log_dir`` (default
``key_dir``), so the logs can be verified after the private keys are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fedsurv.protocol.audit import CrossCheckReport, cross_check, verify_log
from fedsurv.protocol.audit.errors import AuditLogError
from fedsurv.protocol.signing import PRIVATE_SUFFIX, PUBLIC_SUFFIX, create_signing_key

COORDINATOR_NAME = "coordinator"


@dataclass(frozen=True)
class AuditParty:
    """One writer's log, private key and public key."""

    log: Path
    key: Path
    public: Path


@dataclass
class AuditVerdict:
    """Every log verified on its own, then the cross-check."""

    verified: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    cross: CrossCheckReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.cross is not None and self.cross.ok

    def line(self) -> str:
        """One-line verdict, e.g. ``audit: 10 logs verified, cross-check clean``."""
        if self.failures:
            return f"audit: FAILED: {len(self.failures)} log(s) do not verify: " \
                + "; ".join(self.failures)
        assert self.cross is not None
        if not self.cross.ok:
            return f"audit: {len(self.verified)} logs verified, cross-check FAILED: " \
                + "; ".join(f.describe() for f in self.cross.errors)
        warnings = len(self.cross.findings)
        note = f" ({warnings} warning(s))" if warnings else ""
        absent = f", {len(self.missing)} site(s) without a log" if self.missing else ""
        return f"audit: {len(self.verified)} logs verified, cross-check clean{note}{absent}"


@dataclass(frozen=True)
class FederationAudit:
    """Audit material of a coordinator and its sites."""

    coordinator: AuditParty
    sites: dict[str, AuditParty]

    roster: Path | None = None
    """The study roster (enrolled site keys and the coordinator's), installed at every site."""

    def site_config(self, site_id: str) -> dict[str, str]:
        """Node config keys ``audit-log``, ``audit-key`` (and ``roster``) of ``site_id``."""
        party = self.sites[site_id]
        config = {"audit-log": str(party.log), "audit-key": str(party.key)}
        if self.roster is not None:
            config["roster"] = str(self.roster)
        return config

    def run_config(self) -> dict[str, str]:
        """Run config keys ``audit-log`` and ``audit-key`` of the coordinator."""
        return {"audit-log": str(self.coordinator.log), "audit-key": str(self.coordinator.key)}

    def logs(self) -> list[Path]:
        return [self.coordinator.log, *(p.log for p in self.sites.values())]

    def verify(self) -> AuditVerdict:
        """``verify_log`` on every log that exists, then ``cross_check``."""
        verdict = AuditVerdict()
        present = []
        for party in [self.coordinator, *self.sites.values()]:
            if not party.log.exists():
                verdict.missing.append(party.log)
                continue
            try:
                report = verify_log(party.log, party.public)
            except AuditLogError as exc:
                verdict.failures.append(str(exc))
                continue
            if report.ok:
                verdict.verified.append(party.log)
            else:
                assert report.problem is not None
                verdict.failures.append(f"{party.log.name}: {report.problem.describe()}")
            if party is not self.coordinator:
                present.append((party.log, party.public))
        if self.coordinator.log.exists():
            from fedsurv.protocol.roster import StudyRoster

            roster = StudyRoster.load(self.roster) if self.roster is not None else None
            verdict.cross = cross_check(self.coordinator.log, self.coordinator.public, present,
                                        roster=roster)
        elif not verdict.failures:
            verdict.failures.append(f"{self.coordinator.log.name}: coordinator log missing")
        return verdict


def provision_audit(key_dir: Path, site_ids: list[str], *,
                    log_dir: Path | None = None) -> FederationAudit:
    """Ed25519 keys for the coordinator and each site (reused when already there), and the
    study roster (``roster.json`` in ``log_dir``) every site installs."""
    log_dir = log_dir or key_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    coordinator = _party(key_dir, log_dir, COORDINATOR_NAME)
    sites = {site: _party(key_dir, log_dir, f"site-{site}") for site in site_ids}
    from fedsurv.protocol.roster import StudyRoster
    from fedsurv.protocol.signing import load_public_key

    roster = StudyRoster({site: load_public_key(p.public) for site, p in sites.items()},
                         load_public_key(coordinator.public)).write(log_dir / "roster.json")
    return FederationAudit(coordinator, sites, roster)


def _party(key_dir: Path, log_dir: Path, name: str) -> AuditParty:
    private = key_dir / f"{name}{PRIVATE_SUFFIX}"
    public = log_dir / f"{name}{PUBLIC_SUFFIX}"
    if not private.exists():
        private, made_public = create_signing_key(key_dir, name)
        if made_public != public:
            public.write_bytes(made_public.read_bytes())
    elif not public.exists():
        from fedsurv.protocol.signing import load_signing_key, public_pem

        public.write_bytes(public_pem(load_signing_key(private).public_key()))
    return AuditParty(log_dir / f"{name}.audit.jsonl", private, public)
