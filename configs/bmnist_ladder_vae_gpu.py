"""The ladder VAE of `configs/bmnist_ladder_vae.py` at GPU scale: the recipe for a long run on one
accelerator (`experiments/gpu_recipe.sh`).

The same model (two stochastic layers of 40 latents, the VampPrior on z_2, the local
autoregressive decoder on z_1, free bits 0.1 per dimension and layer) with what the published
static-binarisation rows use against overfitting and what a GPU affords: batch 256, a cosine
decay over 1,000 epochs (the order of the epoch counts of LVAE, VLAE and BIVA), a moving average
of the parameters with decay 0.9995 (BIVA's; `config.ema_decay`: the averaged weights are
validated, selected, tested and exported), dropout 0.1 on the MLP hidden layers, decoupled weight
decay 1e-4 (scaled by the learning rate); the epoch with the best validation negative ELBO is
kept, with early stopping after 100 epochs without a better one. Trained on the 50,000 training
images, every choice on validation.

Command (a GPU machine with JAX for CUDA; the recipe script sets the time budget):
  python -m experiments.train --config=configs/bmnist_ladder_vae_gpu.py --workdir=runs/ladder_gpu \
      --config.data.data_dir=DIR --config.max_training_minutes=60
Runtime and result: not measured yet (no GPU was lent when it was written): docs/results.md says
when they are.
"""

from configs import bmnist_ladder_vae


def get_config():
    config = bmnist_ladder_vae.get_config()
    config.batch_size = 256
    config.eval_batch_size = 2000
    config.num_epochs = 1000
    config.kl_warmup_epochs = 20
    config.early_stopping_patience = 100
    config.checkpoint_every_epochs = 5
    config.ema_decay = 0.9995
    config.model.dropout_rate = 0.1
    config.optimizer.weight_decay = 1e-4
    return config
