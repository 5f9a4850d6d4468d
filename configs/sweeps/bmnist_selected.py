"""Sweep: learning rates {1e-3, 1e-2, 3e-2} x seeds {0, 1} of the binarised-MNIST VAE (constant
schedule), each member selected on the validation split with early stopping (6 members, one group).

Command:
  python -m experiments.sweep --config=configs/sweeps/bmnist_selected.py --workdir=runs/sweep_bmnist_selected \
      --config.data.data_dir=../shared/data
Each member keeps the state of its best validation epoch (``model_selection=valid``) and stops
on its own after ``early_stopping_patience`` epochs without improvement, while the others go
on; ``sweep_results.md`` gives each member's test metrics (evaluated once, on the kept state)
and the epoch it kept. The members (784-300-300-40 tanh MLP, 0.5M parameters) train in turn on
a CPU and in one vmapped program on a GPU (``--execution`` overrides the choice).
Runtime: 6 min 53 s on a 2-core CPU shared with other jobs (6 members of up to 12 epochs).
Result (2026-12-02): with 1e-3 both seeds train all 12 epochs and keep the last (test neg.
ELBO 104.1 / 103.6 nats); with 1e-2 the KL collapses (0.7 / 0.3 nats): 12 / 11 epochs trained
(the second stopped early), epochs 9 / 8 kept (211.6 / 211.4); with 3e-2 they diverge and stop
after 6 / 4 epochs, keeping epochs 3 / 1 (598 / 1145). `sweep_results.md` lists the kept and trained epochs.
"""

from configs import bmnist_vae_selected
from vae_jax import sweep_spec


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
