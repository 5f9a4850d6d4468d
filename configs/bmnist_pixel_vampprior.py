"""Likelihood benchmark row: the local-autoregressive VAE of `bmnist_pixel_vae` with a VampPrior.

The networks, warm-up, schedule, validation selection and early stopping of
`configs/bmnist_pixel_vae.py` (masked 7x7 autoregressive head on an MLP VAE with 32
latents); the prior is the VampPrior with 500 learned pseudo-inputs (``model.prior='vamp'``),
and free bits are off (they need a closed-form KL per dimension, which a mixture prior has not).

Command:
  python -m experiments.train --config=configs/bmnist_pixel_vampprior.py \
      --workdir=runs/bmnist_pixel_vampprior --config.data.data_dir=DIR_WITH_binarized_mnist
  python -m experiments.evaluate --workdir=runs/bmnist_pixel_vampprior --num_samples=1000 --sample_chunk=16
Runtime: 28 minutes on a 2-core CPU (stopped early after epoch 72 of 100 at ~2,400
examples/s; validation evaluated after each epoch, test once at the end), plus 10 minutes
for the k = 1000 evaluation.
Expected result (seed 0; epoch 52 selected on validation, neg. ELBO 85.58 there): test NLL
(k = 1000) 82.95 +- 0.21 nats (with N(0, I) and free bits, `bmnist_pixel_vae`: 84.46),
negative ELBO 85.12 (reconstruction 73.64, KL estimate 11.49), 21 of 32 active units.
"""

from configs import bmnist_pixel_vae


def get_config():
    config = bmnist_pixel_vae.get_config()
    config.model.prior = "vamp"
    config.model.prior_components = 500
    config.free_bits = 0.0
    return config
