"""A VAE with a Bernoulli decoder on the statically binarised MNIST (the likelihood benchmark).

Needs the Larochelle `.amat` files in the data dir (`--config.data.data_dir=...` or
$VAE_JAX_DATA_DIR), or tensorflow-datasets with `--config.data.download=True`.

Command:
  python -m experiments.train --config=configs/vae_binarized_mnist.py --workdir=runs/vae_bmnist \
      --config.data.data_dir=../shared/data
Runtime: about 3 minutes on a 2-core CPU.
Expected result: see README ("Results"): test negative ELBO in nats per image.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "binarized_mnist"
    config.likelihood = "bernoulli"
    config.num_epochs = 50
    return config
