"""The lecture's linear autoencoder: one linear layer each way, no activation, squared error.

It finds the same subspace as PCA with the same latent size (compare with configs/pca.py),
but not the orthonormal, variance-ordered PCA basis.

Command:
  python -m experiments.train --config=configs/linear_ae.py --workdir=runs/linear_ae
Runtime and expected result (test squared error per image, next to PCA's): docs/results.md,
the basic configs.
"""

from configs import ae


def get_config():
    config = ae.get_config()
    config.model.encoder_hidden = ()
    config.model.decoder_hidden = ()
    config.model.output_activation = "none"
    return config
