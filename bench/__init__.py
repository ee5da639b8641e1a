"""`make bench`: the performance budgets of DESIGN.md, measured as ratios within one run."""
