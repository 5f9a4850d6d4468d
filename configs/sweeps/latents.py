"""Sweep: latent sizes {2, 20} x learning rates {3e-4, 1e-3} (4 members in 2 groups).

Command:
  python -m experiments.sweep --config=configs/sweeps/latents.py --workdir=runs/sweep_latents
The latent size changes the parameters' shapes, so each size is its own group
(``group-model.latents=2`` and ``group-model.latents=20``, trained one after the other); the two
learning rates of a size train together in it (vmapped on a GPU, in turn on a CPU).
Runtime and result: not measured (docs/results.md, sweeps).
"""

from configs import vae
from vae_jax.training import sweep_spec


def get_config():
    config = vae.get_config()
    config.num_epochs = 10
    return config


def get_sweep():
    return sweep_spec.product(
        sweep_spec.values("model.latents", [2, 20]), sweep_spec.values("optimizer.learning_rate", [3e-4, 1e-3])
    )
