"""Sweep configs: ``get_config()`` (the base config) and ``get_sweep()`` (the members).

Run one with ``python -m experiments.sweep --config=configs/sweeps/<name>.py --workdir=runs/sweep_<name>``.
"""
