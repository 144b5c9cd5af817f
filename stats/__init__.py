"""Pure estimators: pooled tallies in, estimates out. No I/O.

- :mod:`.curve`: ``StepCurve``, the per-bin curve every survival estimator returns.
- :mod:`.kaplan_meier`: Kaplan-Meier (Greenwood SE) and reverse Kaplan-Meier.
- :mod:`.confidence`: pointwise limits on the plain, log and log-log scales (R's survfit).
- :mod:`.median`: median survival (R's rule), Brookmeyer-Crowley interval, follow-up.
- :mod:`.aalen_johansen`: cumulative incidence with competing risks.
- :mod:`.proportions`: Wald, Wilson and Clopper-Pearson intervals.
- :mod:`.logrank`: K-sample and stratified log-rank tests (numpy-only import).
- :mod:`.cox`: Cox regression from site sums (see that module).

On a 1-day grid every estimate equals the pooled analysis of the raw data (tests/estimators,
against lifelines and R fixtures); on a coarser grid it equals the analysis of times rounded
up to bin ends (docs/binning.md).
"""
