"""Sweep: the KL weight beta in {0.5, 1, 2, 4} x seeds {0, 1, 2} of the default VAE (12 members).

Command:
  python -m experiments.sweep --config=configs/sweeps/beta.py --workdir=runs/sweep_beta
Overrides of the base config apply to every member, e.g. ``--config.num_epochs=5``.
All 12 members differ only in values that change no shape (beta, seed), so they form one
group that trains epoch by epoch together: in one vmapped program on a GPU, in turn (each with
a single run's program) on a CPU, where members of this size (0.65M parameters) are
compute-bound. Each member's outputs are in ``runs/sweep_beta/<member>/`` and the final test
metrics in ``runs/sweep_beta/sweep_results.md``.
Runtime: roughly 12 times a 10-epoch single run on a CPU (an estimate: docs/results.md, sweeps).
Expected: the KL falls and the reconstruction error rises as beta grows.
"""

from configs import vae
from vae_jax.training import sweep_spec


def get_config():
    config = vae.get_config()
    config.num_epochs = 10
    return config


def get_sweep():
    return sweep_spec.product(sweep_spec.values("beta", [0.5, 1.0, 2.0, 4.0]), sweep_spec.values("seed", [0, 1, 2]))
