"""Running an experiment: the runner, its units, the Ray executor, sweeps, resume and repair."""
