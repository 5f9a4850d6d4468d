"""Default: a VAE with a Gaussian decoder of variance c on Fashion-MNIST (MLP, 20 latents).

Command:
  python -m experiments.train --config=configs/vae.py --workdir=runs/vae
Overrides, e.g.:
  --config.model.latents=2 --config.beta=4 --config.c=0.1 --config.num_epochs=5
Runtime: about 2 minutes on a 2-core CPU (30 epochs of 60,000 images at ~30k examples/s).
Expected result (seed 0): test negative ELBO -334 nats per image (a density of continuous
pixels, so it can be negative: the Gaussian normaliser alone is (784/2) log(2 pi c) = -454
nats at c = 0.05), KL 33 nats, squared reconstruction error 8.7 per image.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "fashion_mnist"  # mnist | fashion_mnist | binarized_mnist | digits
    config.data.data_dir = ""  # '' -> $VAE_JAX_DATA_DIR, then the usual places
    config.data.binarize = "none"  # none | dynamic (fresh Bernoulli draw every step)
    config.data.download = False  # allow tensorflow-datasets to download (needs network)

    config.model = ml_collections.ConfigDict()
    config.model.kind = "vae"  # vae | ae | pca
    config.model.encoder_hidden = (400,)
    config.model.decoder_hidden = (400,)
    config.model.latents = 20
    config.model.activation = "relu"
    config.model.output_activation = "auto"  # auto: sigmoid means (Gaussian), logits (Bernoulli)
    config.model.architecture = "mlp"  # mlp | conv (stride-2 convolutions, then the MLP widths)
    config.model.conv_features = (32, 64)  # conv widths of the encoder (the decoder mirrors them)
    config.model.decoder_variance = "fixed"  # fixed (c below) | scalar | per_pixel (learned, from c)
    # > 0: autoregressive Bernoulli decoder p(x_i | z, x_<i) (a local PixelCNN head on the decoder):
    config.model.autoregressive_features = 0  # its width (0: factorised decoder, p(x|z) = prod_i p(x_i|z))
    config.model.autoregressive_kernel = 7  # the masked convolution's size (odd): the context it sees
    config.model.autoregressive_layers = 1  # per-pixel dense layers after it
    config.model.autoregressive_z_features = 4  # channels of the decoder's feature map of z
    # p(z): standard_normal N(0, I) | mixture (of learned Gaussians) | vamp (VampPrior: the
    # encoder's posteriors at learned pseudo-inputs); prior_components of the latter two.
    config.model.prior = "standard_normal"
    config.model.prior_components = 500

    # Likelihood p(x|z): 'gaussian' N(f(z), cI) for grey levels, 'bernoulli' for binary data,
    # 'squared_error' for the deterministic AE / PCA (loss ||x - d(e(x))||^2).
    config.likelihood = "gaussian"
    config.c = 0.05  # decoder variance c of the Gaussian likelihood
    config.beta = 1.0  # KL weight: loss = -E[log p(x|z)] + beta * KL
    config.objective = "elbo"  # elbo | iwae (importance-weighted bound with num_train_samples)
    config.num_train_samples = 1  # k of the IWAE objective
    config.kl_warmup_steps = 0  # KL weight rises linearly from 0 to beta over these steps
    config.free_bits = 0.0  # nats per latent dimension the ELBO objective's KL counts at least

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "constant"  # constant | cosine
    config.optimizer.warmup_steps = 0

    config.batch_size = 128
    config.num_epochs = 30
    config.model_selection = "last"  # last | valid (keep the epoch best on the validation split)
    config.early_stopping_patience = 0  # with model_selection=valid: stop after this many epochs without gain
    config.eval_batch_size = 1000
    config.fused_epoch = True  # one compiled program per epoch (lax.scan over its steps)
    config.checkpoint_every_epochs = 1
    config.num_figure_examples = 16
    config.nonfinite = "skip"  # skip | stop: what a non-finite loss or gradient does
    config.overwrite = False  # start over in a workdir that holds a run of another config
    return config
