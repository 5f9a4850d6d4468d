"""Likelihood benchmark row: the same model as bmnist_vae_200.py trained on the IWAE bound, k = 5.

150 epochs; the last epoch is kept.

Command:
  python -m experiments.train --config=configs/bmnist_iwae5.py --workdir=runs/bmnist_iwae5 \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_iwae5 --num_samples=1000
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
Runtime (training, and the k = 1000 evaluation) and expected result (test NLL, negative ELBO,
active units): docs/results.md, likelihood benchmark.
"""

from configs import bmnist_vae_200


def get_config():
    config = bmnist_vae_200.get_config()
    config.objective = "iwae"
    config.num_train_samples = 5
    config.num_epochs = 150
    return config
