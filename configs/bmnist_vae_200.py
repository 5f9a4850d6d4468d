"""Likelihood benchmark row: one-stochastic-layer VAE in the IWAE paper's architecture.

784-200-200-(50 latents)-200-200-784 MLP with tanh, Bernoulli decoder, ELBO (k = 1),
Adam 1e-3 with a cosine decay over 300 epochs, batch 128, static binarised MNIST.

Command:
  python -m experiments.train --config=configs/bmnist_vae_200.py --workdir=runs/bmnist_mlp200 \
      --config.data.data_dir=DIR_WITH_binarized_mnist
  python -m experiments.evaluate --workdir=runs/bmnist_mlp200 --num_samples=1000
Runtime: about 22 minutes on a 2-core CPU (300 epochs at 20-30k examples/s), plus 1.5
minutes for the k = 1000 evaluation.
Expected result (seed 0): test negative ELBO 94.7 nats, test NLL (k = 1000) 90.08 +- 0.25
nats, 17 of 50 active units.
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
