"""Likelihood benchmark row: the plain one-stochastic-layer MLP VAE, selected on validation.

784-300-300-(40 latents)-300-300-784 MLP with tanh, Bernoulli decoder, ELBO (k = 1), KL
warm-up over 10 epochs, Adam 1e-3 with a cosine decay over 400 epochs, batch 128, static
binarised MNIST. The epoch with the best validation negative ELBO is kept, and training
stops after 50 epochs without improvement (the test split is never looked at).

Command:
  python -m experiments.train --config=configs/bmnist_vae_selected.py --workdir=runs/bmnist_selected \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_selected --num_samples=1000
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
The validation split is evaluated after every epoch, the test split once at the end.
Runtime (training, and the k = 1000 evaluation) and expected result (epoch kept, test NLL,
negative ELBO, active units): docs/results.md, likelihood benchmark.
"""

from configs import vae_binarized_mnist


def get_config():
    config = vae_binarized_mnist.get_config()
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.model.latents = 40
    config.model.activation = "tanh"
    config.kl_warmup_epochs = 10
    config.num_epochs = 400
    config.optimizer.schedule = "cosine"
    config.model_selection = "valid"
    config.early_stopping_patience = 50
    config.checkpoint_every_epochs = 10
    return config
