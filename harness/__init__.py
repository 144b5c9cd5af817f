"""Ways to run an analysis without a production deployment: plain numpy simulation, the
in-process Flower grid, a loopback federation of real processes, the demo cohort. Used by
``fedsurv simulate`` / ``fedsurv demo``, the tests and the benchmarks; never by a production
site node or coordinator (docs/architecture.md)."""
