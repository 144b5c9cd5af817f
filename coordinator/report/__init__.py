"""Manuscript outputs from pooled results: tables, plots, warnings and reports.

One job per module: :mod:`.curves` (step arrays, censor marks, number at risk, masking),
:mod:`.plots` (matplotlib figures), :mod:`.figures` (which figures a result set gets),
:mod:`.tables` (CSV tables, Table 1, landmark table), :mod:`.warnings` (small-sample flags),
:mod:`.methods` (methods paragraph), :mod:`.content` (what a report says), :mod:`.html` and
:mod:`.markdown` (rendering). :func:`fedsurv.coordinator.outputs.write_report` ties them together.
Coordinator-only: site-node code never imports this package (it pulls in matplotlib).
"""
