"""Coordinator: runs requests, aggregates tallies securely, computes pooled estimates, reports."""
