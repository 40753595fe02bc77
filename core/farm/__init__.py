"""Scale-out: work units any farm manager can run (plan / run-unit), and Ray running them."""
