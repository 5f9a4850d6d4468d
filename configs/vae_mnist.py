"""A VAE with a Gaussian decoder (variance c) on grey-level MNIST.

Needs MNIST's four IDX files in a data dir (`--config.data.data_dir=DIR` or
$VAE_JAX_DATA_DIR=DIR; where to get them: README, Configs, Data), or tensorflow-datasets with
network: `pip install -e ".[tfds]"` and `--config.data.download=True`.

Command:
  python -m experiments.train --config=configs/vae_mnist.py --workdir=runs/vae_mnist \
      --config.data.download=True
Runtime and result: not measured (docs/results.md); the model and its cost are those of
configs/vae.py.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "mnist"
    return config
