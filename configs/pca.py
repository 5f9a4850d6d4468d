"""PCA by `jnp.linalg.eigh` of the covariance, through the same runner (figures, metrics).

Command:
  python -m experiments.train --config=configs/pca.py --workdir=runs/pca
Runtime: a few seconds on a 2-core CPU.
Expected result: see README ("Results"): test squared error per image with 20 components.
"""

from configs import ae


def get_config():
    config = ae.get_config()
    config.model.kind = "pca"
    return config
