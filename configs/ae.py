"""A deterministic MLP autoencoder on Fashion-MNIST trained on the squared error ||x - d(e(x))||^2.

Command:
  python -m experiments.train --config=configs/ae.py --workdir=runs/ae
Runtime and expected result (test squared error per image): docs/results.md, the basic configs.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.model.kind = "ae"
    config.likelihood = "squared_error"
    return config
