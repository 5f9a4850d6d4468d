"""A ResNet VAE on CIFAR-10: 32x32 colour images through tensorflow-datasets (``tfds:cifar10``).

The likelihood is PixelCNN++'s discretised logistic mixture (``discretized_logistic_mixture``,
10 components per pixel, the colour channels' means linearly dependent on the previous channels)
over the 256 levels of each of the 3 x 32 x 32 = 3072 8-bit values, so the negative ELBO is an
upper bound of the test negative log-likelihood of the 8-bit images, in nats per image and, as
is usual for natural images, in bits per dimension (``bits_per_dim``). Encoder: ResNet stages of
widths 64, 128 and 256 (32x32 -> 4x4; each a stride-2 convolution and 2 pre-activation residual
blocks with GroupNorm), a dense layer to 128 latents; the decoder mirrors it (x2 upsampling).
ELBO, Adam 1e-3, batch 128, 30 epochs over the 50,000 training images; the test split (10,000)
is evaluated after each epoch. The data: 50,000 x 12 KiB float32 = 590 MiB.

Command (the first run downloads CIFAR-10, 160 MB, into DIR/tensorflow_datasets; later runs read
that copy offline; without --config.data.data_dir: ~/tensorflow_datasets):
  python -m experiments.train --config=configs/cifar10_vae.py --workdir=runs/cifar10_vae \
      --config.data.download=True --config.data.data_dir=DIR
The same images from files instead: docs/data.md (a folder of PNGs or .npz arrays).
Runtime and result: not measured (docs/results.md); meant for a GPU.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "tfds:cifar10"
    config.model.architecture = "resnet"
    config.model.resnet_widths = (64, 128, 256)
    config.model.resnet_blocks = 2
    config.model.latents = 128
    config.likelihood = "discretized_logistic_mixture"
    config.model.mixture_components = 10
    return config
