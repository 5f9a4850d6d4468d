"""Likelihood benchmark row: the same model as bmnist_vae_200.py trained on the IWAE bound, k = 5.

Command:
  python -m experiments.train --config=configs/bmnist_iwae5.py --workdir=runs/bmnist_iwae5 \
      --config.data.data_dir=DIR_WITH_binarized_mnist
  python -m experiments.evaluate --workdir=runs/bmnist_iwae5 --num_samples=1000
Runtime: about 25 minutes on a 2-core CPU (150 epochs), plus 1.5 minutes for evaluation.
Expected result: see the README's likelihood table.
"""

from configs import bmnist_vae_200


def get_config():
    config = bmnist_vae_200.get_config()
    config.objective = "iwae"
    config.num_train_samples = 5
    config.num_epochs = 150
    return config
