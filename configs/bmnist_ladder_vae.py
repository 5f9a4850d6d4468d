"""Likelihood benchmark candidate: a 2-layer ladder VAE with the VampPrior on top and the local
autoregressive decoder at the bottom.

Two stochastic layers of 40 latents with top-down inference (`vae_jax.models.ladder`, the Ladder
VAE's precision-weighted posteriors): bottom up 784-300-300 (h_1) -300 (h_2), each giving a
Gaussian estimate of its layer; top down p(z_1 | z_2) through 40-300-(40, 40). The prior of z_2
is the VampPrior with 500 learned pseudo-inputs (``model.prior='vamp'``). p(x | z_1) is the
decoder of `configs/bmnist_pixel_vae.py` with a wider head: z_1 through 300-300 to an 8-channel
28x28 map, mixed per pixel with a masked 7x7 neighbourhood (64 features, two per-pixel layers).
ELBO with free bits per layer (each dimension of z_1's closed-form KL counts at least 0.1 nats;
z_2's one-sample KL estimate at least 40 x 0.1 nats) and a KL warm-up over 10 epochs (on the sum
of the layers' KLs), Adam 1e-3 with a cosine decay over 50 epochs, batch 128; the epoch with the
best validation negative ELBO is kept (never the test split), with early stopping after 20
epochs without a better one. The metrics log kl_1 and kl_2 beside kl (their sum).

Command:
  python -m experiments.train --config=configs/bmnist_ladder_vae.py --workdir=runs/bmnist_ladder_vae \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_ladder_vae --num_samples=1000 --sample_chunk=16
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
The test NLL is importance-sampled over both layers: weights log p(x, z_1, z_2) - log q(z_1, z_2 | x)
at top-down posterior samples.
Runtime (about an hour of training on 2 CPU cores, and about half an hour for the k = 1000
evaluation), expected result (epoch kept, test NLL, negative ELBO, active units per layer) and
validation curve: docs/results.md, likelihood benchmark. Its validation-selected parameters ship
in checkpoints/bmnist_ladder_vae (`experiments.evaluate --workdir=checkpoints/bmnist_ladder_vae`).
"""

from configs import bmnist_pixel_vampprior


def get_config():
    config = bmnist_pixel_vampprior.get_config()
    config.model.hierarchy_latents = (40, 40)
    config.model.hierarchy_hidden = (300,)
    config.model.autoregressive_features = 64
    config.model.autoregressive_layers = 2
    config.free_bits = 0.1
    config.kl_warmup_epochs = 10
    config.num_epochs = 50
    return config
