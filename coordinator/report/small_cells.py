"""The small-cell rule of a report: no patient count below k, and nothing that gives one back.

A journal's or a data-access agreement's rule, set by ``report.min_cell_count`` in the spec or
``fedsurv report --min-cell-count k``. It is presentation only: ``results.json`` keeps the
pooled integers. With ``k`` set, in every rendered output (tables, CSV files, figures,
warnings, terminal summary):

* every count of patients below ``k`` (numbers at risk, N, events, censorings, a proportion's
  numerator or denominator, survivors) prints as ``"<k"`` (:func:`mask_count`);
* a proportion whose numerator or denominator is masked has its percentage and interval
  suppressed too (``estimate x n`` would give the count back; :func:`proportion_hidden`).
"""

from __future__ import annotations

SUPPRESSED = "suppressed (small cell)"


def hides(count: int, min_cell_count: int | None) -> bool:
    """True when the rule masks ``count``: ``k`` is set and ``count < k``."""
    return min_cell_count is not None and count < min_cell_count


def mask_count(count: int, min_cell_count: int | None) -> str:
    """``str(count)``, or ``"<k"`` when a minimum cell count ``k`` is set and ``count < k``."""
    return f"<{min_cell_count}" if hides(count, min_cell_count) else str(count)


def proportion_hidden(count: int, n: int, min_cell_count: int | None) -> bool:
    """True when a proportion ``count/n`` must not be shown (either count is masked)."""
    return hides(count, min_cell_count) or hides(n, min_cell_count)


def mask_note(min_cell_count: int) -> str:
    """The sentence under a table that says what the rule did."""
    return (f"Small-cell rule: patient counts below {min_cell_count} are shown as "
            f"<{min_cell_count}, and proportions built on them are suppressed.")


def fraction_text(count: int, n: int, min_cell_count: int | None) -> str:
    """``"34/43"`` with each part masked by the rule (``"<10/43"``)."""
    return f"{mask_count(count, min_cell_count)}/{mask_count(n, min_cell_count)}"
