"""Likelihood benchmark row: one-stochastic-layer VAE in the IWAE paper's architecture.

784-200-200-(50 latents)-200-200-784 MLP with tanh, Bernoulli decoder, ELBO (k = 1),
Adam 1e-3 with a cosine decay over 300 epochs, batch 128, static binarised MNIST.

The last epoch is kept.

Command:
  python -m experiments.train --config=configs/bmnist_vae_200.py --workdir=runs/bmnist_mlp200 \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_mlp200 --num_samples=1000
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
Runtime (training, and the k = 1000 evaluation) and expected result (test NLL, negative ELBO,
active units): docs/results.md, likelihood benchmark.
"""

from configs import vae_binarized_mnist


def get_config():
    config = vae_binarized_mnist.get_config()
    config.model.encoder_hidden = (200, 200)
    config.model.decoder_hidden = (200, 200)
    config.model.latents = 50
    config.model.activation = "tanh"
    config.num_epochs = 300
    config.optimizer.schedule = "cosine"
    config.checkpoint_every_epochs = 10
    return config
