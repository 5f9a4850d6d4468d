"""Default: a VAE with a Gaussian decoder of variance c on Fashion-MNIST (MLP, 20 latents).

Command:
  python -m experiments.train --config=configs/vae.py --workdir=runs/vae
Overrides, e.g.:
  --config.model.latents=2 --config.beta=4 --config.c=0.1 --config.num_epochs=5
Every key, its default and its meaning: `vae_jax/config.py` (`default_config`).
30 epochs of the 60,000 training images; the test split is evaluated after each epoch and once
more at the end (``final_metrics.json``).
Runtime and expected result: docs/results.md, the basic configs. The test negative ELBO is
negative (nats per image): a Gaussian decoder is a density over continuous pixels, and its
normaliser (784/2) log(2 pi c) is below zero for c = 0.05; docs/results.md works it out.
"""

from vae_jax import config as config_lib


def get_config():
    """Every value a run reads, with its default (see `vae_jax.config.default_config`)."""
    return config_lib.default_config()
