"""Running an experiment: a resolved config checked, finalised and turned into a strategy (build),
executed into a run directory (runner), exported (export). Sits above training/ and results/."""
