"""The systems that run: the registry, the paper's sparse sharing, the tagging and tabular baselines, and
the data context they read."""
