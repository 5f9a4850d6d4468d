"""A ResNet VAE on CelebA faces at 64x64 (``tfds:celeb_a``, centre crop 140, resized to 64).

Each 178x218 photo is cut to its centre 140x140 square (the face) and resized to 64x64 with an
antialiased bilinear filter (``--config.data.crop=140 --config.data.image_size=64``, docs/data.md),
RGB. The likelihood is PixelCNN++'s discretised logistic mixture (10 components per pixel, the
colour channels' means linearly dependent on the previous channels) over the 256 levels of each of
the 3 x 64 x 64 = 12288 8-bit values: nats per image and bits per dimension (``bits_per_dim``).
Encoder: ResNet stages of widths 64, 128, 256 and 256 (64x64 -> 4x4; each a stride-2 convolution
and 2 pre-activation residual blocks with GroupNorm), a dense layer to 128 latents; the decoder
mirrors it. ELBO, Adam 1e-3, batch 128, 10 epochs over the 162,770 training images; the test
split (19,962 images) is evaluated after each epoch, and the validation split (19,867) is there
for ``--config.model_selection=valid``. The data: 162,770 x 48 KiB float32 = 7.5 GiB in memory for
training, 1.8 GiB for the other two splits.

Command (the first run downloads CelebA, 1.4 GB, into DIR/tensorflow_datasets; later runs read
that copy offline):
  python -m experiments.train --config=configs/celeba64_vae.py --workdir=runs/celeba64_vae \
      --config.data.download=True --config.data.data_dir=DIR
The same from the aligned JPEGs (img_align_celeba/, one folder of 202,599 files; a seeded tenth
held out for testing instead of the official split):
  python -m experiments.train --config=configs/celeba64_vae.py --workdir=runs/celeba64_folder \
      --config.data.name=folder --config.data.data_dir=img_align_celeba
Runtime and result: not measured (docs/results.md); meant for a GPU.
"""

from configs import vae


def get_config():
    config = vae.get_config()
    config.data.name = "tfds:celeb_a"
    config.data.crop = 140
    config.data.image_size = 64
    config.data.channels = 3
    config.model.architecture = "resnet"
    config.model.resnet_widths = (64, 128, 256, 256)
    config.model.resnet_blocks = 2
    config.model.latents = 128
    config.likelihood = "discretized_logistic_mixture"
    config.model.mixture_components = 10
    config.num_epochs = 10
    return config
