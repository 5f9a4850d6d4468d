"""Training: the step/segment/evaluation programs, the one loop for runs and sweeps, runs,
sweeps, model selection, preemption, checkpoints, the workdir, export and validation curves."""
