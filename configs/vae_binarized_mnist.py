"""A VAE with a Bernoulli decoder on the statically binarised MNIST (the likelihood benchmark).

Needs the Larochelle `.amat` files in the data dir (`--config.data.data_dir=...` or
$VAE_JAX_DATA_DIR), or tensorflow-datasets with `--config.data.download=True`.

Command:
  python -m experiments.train --config=configs/vae_binarized_mnist.py --workdir=runs/vae_bmnist \
      --config.data.data_dir=../shared/data
Runtime: about 2 minutes on a 2-core CPU (50 epochs of 50,000 images at ~25k examples/s).
Expected result (seed 0): test negative ELBO 100.3 nats per image (reconstruction 72.2, KL
28.1); the README's likelihood table has longer runs and importance-sampled NLLs.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "binarized_mnist"
    config.likelihood = "bernoulli"
    config.num_epochs = 50
    return config
