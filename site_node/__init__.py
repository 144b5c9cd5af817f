"""Site node: load and validate local data, derive endpoints, tally, enforce the release policy.

Patient-level data never leaves this package; only tally vectors (securely aggregated) do.
"""
