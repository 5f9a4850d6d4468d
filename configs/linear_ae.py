"""The lecture's linear autoencoder: one linear layer each way, no activation, squared error.

It finds the same subspace as PCA with the same latent size (compare with configs/pca.py),
but not the orthonormal, variance-ordered PCA basis.

Command:
  python -m experiments.train --config=configs/linear_ae.py --workdir=runs/linear_ae
Runtime: about 30 seconds on a 2-core CPU.
Expected result (seed 0): test squared error 14.70 per image, against 14.66 for PCA with 20
components (configs/pca.py).
"""

from configs import ae


def get_config():
    config = ae.get_config()
    config.model.encoder_hidden = ()
    config.model.decoder_hidden = ()
    config.model.output_activation = "none"
    return config
