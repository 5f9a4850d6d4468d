"""Likelihood benchmark row: the plain MLP VAE of `bmnist_vae_selected` with a VampPrior.

The same 784-300-300-(40 latents)-300-300-784 tanh MLP, Bernoulli decoder, ELBO, KL warm-up
over 10 epochs, Adam 1e-3 with a cosine decay over 400 epochs, batch 128, selection on the
validation split and early stopping after 50 epochs without improvement; only the prior
differs: p(z) = (1/500) sum_k q(z | u_k), the encoder's posteriors at 500 learned
pseudo-inputs u_k (Tomczak & Welling 2018; `vae.VAE`, ``model.prior='vamp'``). The KL
then has no closed form: the ELBO uses the one-sample estimate log q(z|x) - log p(z).

Command:
  python -m experiments.train --config=configs/bmnist_vampprior.py --workdir=runs/bmnist_vampprior \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_vampprior --num_samples=1000
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
The 500 pseudo-inputs go through the encoder at every step, so a step costs more than with
N(0, I). Runtime (training, and the k = 1000 evaluation; the cost factor against N(0, I)) and
expected result (epoch kept, test NLL next to the same VAE with N(0, I), negative ELBO, active
units): docs/results.md, likelihood benchmark.
"""

from configs import bmnist_vae_selected


def get_config():
    config = bmnist_vae_selected.get_config()
    config.model.prior = "vamp"
    config.model.prior_components = 500
    return config
