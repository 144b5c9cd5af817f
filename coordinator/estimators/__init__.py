"""Pure estimators: pooled tallies in, estimates out. No I/O."""
