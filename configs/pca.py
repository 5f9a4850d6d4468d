"""PCA by `jnp.linalg.eigh` of the covariance, through the same runner (figures, metrics).

Command:
  python -m experiments.train --config=configs/pca.py --workdir=runs/pca
Runtime and expected result (test squared error per image, 20 components): docs/results.md,
the basic configs; the fit alone is timed by ``python -m experiments.benchmark --parts=pca``.
"""

from configs import ae


def get_config():
    config = ae.get_config()
    config.model.kind = "pca"
    return config
