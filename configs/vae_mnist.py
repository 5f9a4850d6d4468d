"""A VAE with a Gaussian decoder (variance c) on grey-level MNIST.

Needs the IDX files in the data dir (`--config.data.data_dir=...` or $VAE_JAX_DATA_DIR),
or tensorflow-datasets with network: `pip install -e .[tfds]` and `--config.data.download=True`.

Command:
  python -m experiments.train --config=configs/vae_mnist.py --workdir=runs/vae_mnist \
      --config.data.download=True
Runtime: about 2 minutes on a 2-core CPU (after the download).
Expected result: like configs/vae.py, on MNIST.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "mnist"
    return config
