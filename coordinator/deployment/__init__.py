"""Real Flower deployment on loopback: PKI, SuperLink/SuperNode processes, thin app bundle, runs.

Used by ``fedsurv demo``, the integration tests and the federation benchmark. Every server
binds to 127.0.0.1; every process started is stopped (with its descendants) on exit.
"""
