"""Sweep: learning rates {1e-3, 1e-2, 3e-2} x seeds {0, 1} of the binarised-MNIST VAE (constant
schedule), each member selected on the validation split with early stopping (6 members, one group).

Command:
  python -m experiments.sweep --config=configs/sweeps/bmnist_selected.py --workdir=runs/sweep_bmnist_selected \
      --config.data.data_dir=DIR
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
Each member keeps the state of its best validation epoch (``model_selection=valid``) and stops
on its own after ``early_stopping_patience`` epochs without improvement, while the others go
on; ``sweep_results.md`` gives each member's test metrics (evaluated once, on the kept state)
and the epoch it kept. The members (784-300-300-40 tanh MLP, 0.69M parameters) train in turn on
a CPU and in one vmapped program on a GPU (``--execution`` overrides the choice).
6 members of up to 12 epochs. Runtime and result (which members collapse, diverge or stop
early, and the epochs they keep): docs/results.md, sweeps.
"""

from configs import bmnist_vae_selected
from vae_jax.training import sweep_spec


def get_config():
    config = bmnist_vae_selected.get_config()
    config.num_epochs = 12
    config.optimizer.schedule = "constant"
    config.kl_warmup_epochs = 2
    config.early_stopping_patience = 3
    config.checkpoint_every_epochs = 5
    return config


def get_sweep():
    return sweep_spec.product(
        sweep_spec.values("optimizer.learning_rate", [1e-3, 1e-2, 3e-2]), sweep_spec.values("seed", [0, 1])
    )
