"""Likelihood benchmark row: the local-autoregressive VAE of `bmnist_pixel_vae` with a VampPrior.

The networks, warm-up, schedule, validation selection and early stopping of
`configs/bmnist_pixel_vae.py` (masked 7x7 autoregressive head on an MLP VAE with 32
latents); the prior is the VampPrior with 500 learned pseudo-inputs (``model.prior='vamp'``),
and free bits are off (they need a closed-form KL per dimension, which a mixture prior has not).

Command:
  python -m experiments.train --config=configs/bmnist_pixel_vampprior.py \
      --workdir=runs/bmnist_pixel_vampprior --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_pixel_vampprior --num_samples=1000 --sample_chunk=16
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
The validation split is evaluated after every epoch, the test split once at the end.
Runtime (training, and the k = 1000 evaluation) and expected result (epoch kept, test NLL,
negative ELBO, active units; the best row of the benchmark): docs/results.md, likelihood
benchmark.
"""

from configs import bmnist_pixel_vae


def get_config():
    config = bmnist_pixel_vae.get_config()
    config.model.prior = "vamp"
    config.model.prior_components = 500
    config.free_bits = 0.0
    return config
