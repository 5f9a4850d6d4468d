"""Default: a VAE with a Gaussian decoder of variance c on Fashion-MNIST (MLP, 20 latents).

Command:
  python -m experiments.train --config=configs/vae.py --workdir=runs/vae
Overrides, e.g.:
  --config.model.latents=2 --config.beta=4 --config.c=0.1 --config.num_epochs=5
Every key, its default and its meaning: `vae_jax/config.py` (`default_config`).
Runtime: about 2 minutes on a 2-core CPU (30 epochs of 60,000 images at ~30k examples/s).
Expected result (seed 0): test negative ELBO -334 nats per image (a density of continuous
pixels, so it can be negative: the Gaussian normaliser alone is (784/2) log(2 pi c) = -454
nats at c = 0.05), KL 33 nats, squared reconstruction error 8.7 per image.
"""

from vae_jax import config as config_lib


def get_config():
    """Every value a run reads, with its default (see `vae_jax.config.default_config`)."""
    return config_lib.default_config()
