"""The ladder VAE of `configs/bmnist_ladder_vae.py` given two hours: the frontier's 120-minute point.

Everything as in `configs/bmnist_ladder_vae.py` (2 layers of 40 latents, top-down inference,
VampPrior on z_2, the autoregressive decoder on z_1, free bits 0.1, KL warm-up over 10 epochs,
Adam 1e-3, batch 128, the epoch with the best validation negative ELBO kept, early stopping
after 20 epochs without a better one) except the length: 180 epochs and a cosine decay over
180, about two hours of training steps on 2 CPU cores at ~1,300 examples/s (the step's
benchmark rate since `vae_jax.models.tall_matmul`; the hour-long config runs 50 epochs), unless early
stopping ends it sooner (it did, after 43 minutes: docs/results.md). It
answers the issue's question of what more time buys the same model; its validation curve
(`python -m experiments.curve`) gives the best validation negative ELBO at 30, 60 and 120
minutes of the one run.

Command:
  python -m experiments.train --config=configs/bmnist_ladder_vae_2h.py --workdir=runs/bmnist_ladder_vae_2h \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_ladder_vae_2h --num_samples=1000 --sample_chunk=16
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
A stop signal (SIGTERM, Ctrl-C) checkpoints within a segment and the same command resumes it
bit for bit, so the two hours may be spread over several sittings. Result and curve:
docs/results.md, likelihood benchmark.
"""

from configs import bmnist_ladder_vae


def get_config():
    config = bmnist_ladder_vae.get_config()
    config.num_epochs = 180
    return config
