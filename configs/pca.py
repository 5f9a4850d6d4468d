"""PCA by `jnp.linalg.eigh` of the covariance, through the same runner (figures, metrics).

Command:
  python -m experiments.train --config=configs/pca.py --workdir=runs/pca
Runtime: about 20 seconds on a 2-core CPU (the fit itself takes under a second).
Expected result: test squared error 14.66 per image with 20 components.
"""

from configs import ae


def get_config():
    config = ae.get_config()
    config.model.kind = "pca"
    return config
