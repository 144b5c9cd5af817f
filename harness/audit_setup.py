"""Audit keys and logs for a loopback federation (``fedsurv demo``, integration tests).

    audit = audited_sites(sites, work / "audit-keys", out / "audit")   # before LocalFederation
    run_analysis(federation, spec, out, options=audit.run_config())
    for line in audit_report(audit):
        print(line)          # log paths, then "audit: 10 logs verified, cross-check clean"

Each site's node config gets ``audit-log``/``audit-key``; the coordinator's pair goes into the
run config. Private keys stay in ``key_dir``; logs and public keys go to ``log_dir``, so the
logs can be verified (``fedsurv audit verify``/``cross-check``) after the keys are deleted.
"""

from __future__ import annotations

from pathlib import Path

from fedsurv.coordinator.audit_provision import AuditVerdict, FederationAudit, provision_audit
from fedsurv.harness.federation import Site


def audited_sites(sites: list[Site], key_dir: Path, log_dir: Path) -> FederationAudit:
    """Create an audit key per site and for the coordinator; add the sites' node config."""
    audit = provision_audit(key_dir.resolve(), [s.site_id for s in sites],
                            log_dir=log_dir.resolve())
    for site in sites:
        site.node_config.update(audit.site_config(site.site_id))
    return audit


def audit_report(audit: FederationAudit) -> tuple[list[str], AuditVerdict]:
    """Lines naming every log and the one-line verdict (last), and the verdict itself."""
    verdict = audit.verify()
    lines = [f"audit log {name}: {party.log}" for name, party in
             [("coordinator", audit.coordinator), *((f"site {s}", p)
                                                    for s, p in audit.sites.items())]]
    lines.append(verdict.line())
    return lines, verdict
