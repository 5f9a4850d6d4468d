"""Likelihood benchmark row: a VAE with a local autoregressive (PixelCNN-style) decoder.

784-300-300-(32 latents) MLP encoder; the decoder maps z through 300-300 to an 8-channel
28x28 feature map, and each pixel's Bernoulli logit mixes it with a masked 7x7 neighbourhood
of the pixels before it (three rows above, three to the left; `autoregressive.AutoregressiveDecoder`).
The small context leaves global shape to z. ELBO with free bits (0.25 nats per latent
dimension) and a KL warm-up over 10 epochs, Adam 1e-3 with a cosine decay, batch 128; the
epoch with the best validation negative ELBO is kept (never the test split), and training
stops after 20 epochs without a better one.

Command:
  python -m experiments.train --config=configs/bmnist_pixel_vae.py --workdir=runs/bmnist_pixel \
      --config.data.data_dir=DIR
  python -m experiments.evaluate --workdir=runs/bmnist_pixel --num_samples=1000 --sample_chunk=16
where DIR holds binarized_mnist_{train,valid,test}.amat (where to get them: README, Configs, Data).
The validation split is evaluated after every epoch, the test split once at the end.
Runtime (training, and the k = 1000 evaluation) and expected result (epoch kept, test NLL,
negative ELBO, active units): docs/results.md, likelihood benchmark, which also has the row of
``--config.model.autoregressive_kernel=5`` (the masked 5x5 neighbourhood).
"""

from configs import vae_binarized_mnist


def get_config():
    config = vae_binarized_mnist.get_config()
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.model.latents = 32
    config.model.autoregressive_features = 32
    config.model.autoregressive_kernel = 7
    config.model.autoregressive_z_features = 8
    config.free_bits = 0.25
    config.kl_warmup_epochs = 10
    config.num_epochs = 100
    config.optimizer.schedule = "cosine"
    config.model_selection = "valid"
    config.early_stopping_patience = 20
    config.checkpoint_every_epochs = 5
    return config
