"""A VAE with a Bernoulli decoder on the statically binarised MNIST (the likelihood benchmark).

Needs Larochelle's `.amat` files in a data dir (`--config.data.data_dir=DIR` or
$VAE_JAX_DATA_DIR=DIR), or tensorflow-datasets with `--config.data.download=True`.

Command:
  python -m experiments.train --config=configs/vae_binarized_mnist.py --workdir=runs/vae_bmnist \
      --config.data.data_dir=DIR
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
50 epochs of the 50,000 training images.
Runtime and expected result (test negative ELBO, nats per image): docs/results.md, the basic
configs; its likelihood benchmark has longer runs and importance-sampled NLLs.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "binarized_mnist"
    config.likelihood = "bernoulli"
    config.num_epochs = 50
    return config
