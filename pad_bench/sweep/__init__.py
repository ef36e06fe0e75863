"""`pad-bench sweep`: a spec (benchmarks x strategies x profiles x grid x seeds) expanded into runs under one
sweep directory, executed as Ray tasks (`execute`), tracked in sweep.yaml (`state`)."""
