"""Flax Linen models: MLP, convolutional and ResNet encoders and decoders, a deterministic
autoencoder and a VAE.

All modules are pure: ``params = model.init(...)``, ``model.apply(params, ...)``. Inputs are
images ``[batch, H, W, C]`` (any trailing shape for the MLP), flattened inside the encoder;
decoders return ``[batch, H, W, P]`` with ``P`` numbers per pixel (`likelihood_parameters`).

The decoder's raw output is the mean f(z) of a Gaussian p(x|z) = N(f(z), cI) when
``output_activation='sigmoid'`` (grey levels in [0, 1]), or the logits of a Bernoulli
p(x|z) when ``output_activation='none'`` (binary data; the loss applies the sigmoid). For
8-bit data, a VAE's decoder outputs the parameters of a discretised logistic (mixture) per
pixel (`split_likelihood_parameters`), with ``P`` = 2C or ``K (1 + 2C + C (C - 1) / 2)``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from vae_jax import losses, tall_matmul

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "sigmoid": nn.sigmoid,
    "silu": nn.silu,
    "none": lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation function called ``name`` (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers of widths ``hidden``, each followed by ``activation``; flattens its input."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = activation(self.activation)(nn.Dense(width)(x))
        return x


class Encoder(nn.Module):
    """Image -> latent. Gaussian heads ``(mean, logvar)`` when ``gaussian``, else a point code."""

    hidden: Sequence[int]
    latents: int
    activation: str = "relu"
    gaussian: bool = True

    @nn.compact
    def __call__(self, x: jax.Array):
        h = MLP(self.hidden, self.activation, name="body")(x)
        mean = nn.Dense(self.latents, name="mean")(h)
        if not self.gaussian:
            return mean
        return mean, nn.Dense(self.latents, name="logvar")(h)


class Decoder(nn.Module):
    """Latent ``[batch, latents]`` -> ``[batch, *output_shape]`` (Gaussian mean or logits)."""

    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = MLP(self.hidden, self.activation, name="body")(z)
        out = nn.Dense(math.prod(self.output_shape), name="out")(h)
        out = activation(self.output_activation)(out)
        return out.reshape((z.shape[0], *self.output_shape))


class ConvEncoder(nn.Module):
    """Image -> stride-2 3x3 convolutions of widths ``features`` -> an MLP `Encoder`."""

    features: Sequence[int]
    hidden: Sequence[int]
    latents: int
    activation: str = "relu"
    gaussian: bool = True

    @nn.compact
    def __call__(self, x: jax.Array):
        for width in self.features:
            x = activation(self.activation)(nn.Conv(width, (3, 3), strides=(2, 2))(x))
        return Encoder(self.hidden, self.latents, self.activation, self.gaussian, name="head")(x)


class ConvDecoder(nn.Module):
    """Latent -> MLP -> a coarse feature map -> stride-2 transposed convolutions -> image.

    The feature map is ``output_shape`` divided by ``2 ** len(features)`` (rounded up), so
    28x28 images with two layers start from 7x7; the result is cropped to ``output_shape``.
    """

    features: Sequence[int]
    hidden: Sequence[int]
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.output_shape
        scale = 2 ** len(self.features)
        coarse = (-(-height // scale), -(-width // scale), self.features[0])
        h = MLP(self.hidden, self.activation, name="body")(z)
        h = activation(self.activation)(nn.Dense(math.prod(coarse), name="to_map")(h)).reshape((z.shape[0], *coarse))
        for width_out in self.features[1:]:
            h = activation(self.activation)(nn.ConvTranspose(width_out, (3, 3), strides=(2, 2))(h))
        out = nn.ConvTranspose(channels, (3, 3), strides=(2, 2), name="out")(h)[:, :height, :width, :]
        return activation(self.output_activation)(out)


RESNET_NORMS = ("group", "none")


def group_norm_groups(width: int) -> int:
    """GroupNorm's number of groups for ``width`` channels: gcd(32, width) (32 groups as in
    Wu & He 2018 when it divides the width, else the largest power of two that does)."""
    return math.gcd(32, width)


class ResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): ``x + conv(act(norm(conv(act(norm(x))))))``,
    two 3x3 convolutions of ``width`` channels (the input has ``width`` channels).

    ``norm`` 'group' is GroupNorm (`group_norm_groups`), 'none' no normalisation. The second
    convolution starts at zero, so each block starts as the identity and a deep stack trains
    like a shallow one at first (as the zero-initialised last BatchNorm scale of Goyal et al.
    2017)."""

    width: int
    activation: str = "relu"
    norm: str = "group"

    def _normalise(self, h: jax.Array, name: str) -> jax.Array:
        if self.norm == "none":
            return h
        return nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name=name)(h)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation(self.activation)
        h = nn.Conv(self.width, (3, 3), name="conv1")(act(self._normalise(x, "norm1")))
        h = nn.Conv(self.width, (3, 3), kernel_init=nn.initializers.zeros, name="conv2")(
            act(self._normalise(h, "norm2"))
        )
        return x + h


def resnet_coarse_shape(image_shape: Sequence[int], stages: int) -> tuple[int, int]:
    """The side lengths of a `ResNetEncoder`'s last feature map (and of the map a
    `ResNetDecoder` starts from) for images of ``image_shape`` ``(H, W, C)``: each stage halves
    them, rounding up ('SAME' padding), so any size works; the decoder crops its output."""
    height, width = image_shape[:2]
    return -(-height // 2**stages), -(-width // 2**stages)


class ResNetEncoder(nn.Module):
    """Image -> ResNet stages -> flatten -> dense heads ``(mean, logvar)`` (or a point code).

    Stage ``i`` (one per entry of ``widths``): a stride-2 3x3 convolution to ``widths[i]``
    channels (halving the sides, rounding up: odd sides are padded), then ``blocks``
    `ResidualBlock` s. The last feature map (`resnet_coarse_shape`) goes through
    ``act(norm(.))`` and is flattened into the dense heads. Inputs in [0, 1] are shifted to
    [-1, 1] first."""

    widths: Sequence[int]
    blocks: int
    latents: int
    activation: str = "relu"
    norm: str = "group"
    gaussian: bool = True

    @nn.compact
    def __call__(self, x: jax.Array):
        h = 2.0 * x - 1.0
        for stage, width in enumerate(self.widths):
            h = nn.Conv(width, (3, 3), strides=(2, 2), name=f"down{stage}")(h)
            for block in range(self.blocks):
                h = ResidualBlock(width, self.activation, self.norm, name=f"stage{stage}_block{block}")(h)
        if self.norm == "group":
            h = nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name="norm_out")(h)
        h = activation(self.activation)(h).reshape(h.shape[0], -1)
        mean = nn.Dense(self.latents, name="mean")(h)
        if not self.gaussian:
            return mean
        return mean, nn.Dense(self.latents, name="logvar")(h)


class ResNetDecoder(nn.Module):
    """Latent -> dense -> the coarse feature map -> ResNet stages -> output head, cropped.

    The mirror of `ResNetEncoder`: a dense layer to the ``resnet_coarse_shape`` map with
    ``widths[-1]`` channels, then, for the widths in reverse order, ``blocks``
    `ResidualBlock` s followed by a 2x nearest-neighbour upsampling and a 3x3 convolution to
    the next (smaller) width (``widths[0]`` after the last stage): upsampling then convolving
    avoids the checkerboard artefacts of strided transposed convolutions (Odena et al.
    2016). The head is ``act(norm(.))`` and a 3x3 convolution to ``output_shape[-1]``
    channels (the likelihood's parameters per pixel), then ``output_activation``; the map,
    ``2 ** stages`` times the coarse one, is cropped to ``output_shape``."""

    widths: Sequence[int]
    blocks: int
    output_shape: Sequence[int]
    activation: str = "relu"
    norm: str = "group"
    output_activation: str = "none"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.output_shape
        stages = len(self.widths)
        coarse = (*resnet_coarse_shape(self.output_shape, stages), self.widths[-1])
        h = nn.Dense(math.prod(coarse), name="to_map")(z).reshape((z.shape[0], *coarse))
        for stage in reversed(range(stages)):
            for block in range(self.blocks):
                h = ResidualBlock(self.widths[stage], self.activation, self.norm, name=f"stage{stage}_block{block}")(h)
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest-neighbour, x2
            h = nn.Conv(self.widths[max(stage - 1, 0)], (3, 3), name=f"up{stage}")(h)
        if self.norm == "group":
            h = nn.GroupNorm(num_groups=group_norm_groups(h.shape[-1]), name="norm_out")(h)
        out = nn.Conv(channels, (3, 3), name="out")(activation(self.activation)(h))[:, :height, :width, :]
        return activation(self.output_activation)(out)


def causal_offsets(kernel_size: int) -> list[tuple[int, int]]:
    """The ``(row, column)`` offsets of a ``k x k`` window strictly before its centre in raster
    order: the rows above, and the pixels to the left in the centre row (PixelCNN's mask A)."""
    half = kernel_size // 2
    return [(dr, dc) for dr in range(-half, 1) for dc in range(-half, half + 1) if dr < 0 or dc < 0]


def causal_neighbourhoods(x: jax.Array, kernel_size: int) -> jax.Array:
    """``[b, H, W, C * n]``: at each pixel, the values of the ``n`` pixels of `causal_offsets`
    (zero outside the image). Slices of the padded image: no convolution, no gradient needed."""
    half = kernel_size // 2
    height, width = x.shape[-3:-1]
    padded = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(half, half), (half, half), (0, 0)])
    return jnp.concatenate(
        [
            padded[..., half + dr : half + dr + height, half + dc : half + dc + width, :]
            for dr, dc in causal_offsets(kernel_size)
        ],
        axis=-1,
    )


class MaskedConv(nn.Module):
    """Same-size 2-D convolution whose output at a pixel sees only the input pixels before it
    in raster order (`causal_offsets`), so it never sees the pixel it helps to predict.

    Computed as a dense layer on `causal_neighbourhoods` (a masked convolution's taps without
    the masked-out half): one matrix product, forward and backward (`tall_matmul.RowsDense`)."""

    features: int
    kernel_size: int = 7

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        taps = tall_matmul.RowsDense(self.features, name="taps")
        return taps(causal_neighbourhoods(x, self.kernel_size))


class AutoregressiveDecoder(nn.Module):
    """p(x|z) = prod_i p(x_i | z, x_<i): a factorised decoder's feature map of z, mixed per pixel
    with a masked convolution of the pixels before it (a local PixelCNN head; Gulrajani et
    al. 2017, "PixelVAE"). Single-channel images; outputs Bernoulli logits.

    The latent decoder ``base`` maps z to ``[b, H, W, z_features]``; at each pixel,
    ``h = act(MaskedConv(x) + Dense(features))`` goes through ``hidden_layers`` per-pixel
    dense layers of width ``features`` to one logit (`tall_matmul.RowsDense`: Dense layers
    whose weight and bias gradients, sums over every pixel of the batch, use every core). Teacher forcing makes the log-likelihood
    one parallel pass (``__call__(z, x)``); decoding images is sequential
    (`vae_jax.objectives.greedy_autoregressive_images`).
    """

    base: nn.Module
    features: int = 32
    kernel_size: int = 7
    hidden_layers: int = 1
    activation: str = "relu"

    def setup(self):
        self.context = MaskedConv(self.features, self.kernel_size)
        self.condition = tall_matmul.RowsDense(self.features)
        self.hidden = [tall_matmul.RowsDense(self.features) for _ in range(self.hidden_layers)]
        self.out = tall_matmul.RowsDense(1)

    def latent_features(self, z: jax.Array) -> jax.Array:
        """``[b, H, W, z_features]``: everything the decoder takes from z."""
        return self.base(z)

    def logits(self, latent_features: jax.Array, x: jax.Array) -> jax.Array:
        """Logits ``[b, H, W, 1]`` of each pixel given z's features and the pixels before it in ``x``."""
        act = activation(self.activation)
        h = act(self.context(2.0 * x - 1.0) + self.condition(latent_features))
        for layer in self.hidden:
            h = act(layer(h))
        return self.out(h)

    def __call__(self, z: jax.Array, x: jax.Array) -> jax.Array:
        return self.logits(self.latent_features(z), x)


DISCRETIZED_LIKELIHOODS = ("discretized_logistic", "discretized_logistic_mixture")


def likelihood_parameters(likelihood: str, channels: int, mixture_components: int = 10) -> int:
    """How many numbers per pixel a decoder outputs for ``likelihood`` on ``channels``-channel
    images (`split_likelihood_parameters` gives them their meaning): one per channel for
    'gaussian' (the mean), 'bernoulli' (the logit) and 'squared_error'; two per channel for
    'discretized_logistic' (mean and log-scale); ``K (1 + 2C + C (C - 1) / 2)`` for
    'discretized_logistic_mixture' with ``K = mixture_components`` (per component: its logit
    weight, a mean and a log-scale per channel, and PixelCNN++'s coefficients of the
    channels' dependence on the previous ones)."""
    if likelihood == "discretized_logistic":
        return 2 * channels
    if likelihood == "discretized_logistic_mixture":
        return mixture_components * (1 + 2 * channels + channels * (channels - 1) // 2)
    return channels


def split_likelihood_parameters(likelihood: str, output: jax.Array, channels: int) -> dict[str, jax.Array]:
    """The parameters of p(x|z) in a decoder's ``output`` ``[..., H, W, P]`` for ``channels``-
    channel images, as keyword arguments of the `vae_jax.losses` functions.

    'discretized_logistic': ``mean`` and ``log_scale``, each ``[..., H, W, C]`` (the first C
    outputs of a pixel, then the next C). 'discretized_logistic_mixture' with ``K``
    components (``P = K (1 + 2C + C (C - 1) / 2)``, see `likelihood_parameters`):
    ``logit_weights`` ``[..., H, W, K]`` (the first K), then ``means`` and ``log_scales``
    ``[..., H, W, C, K]`` (C K each, channel-major), then ``coefficients``
    ``[..., H, W, C (C - 1) / 2, K]`` through ``tanh`` as in PixelCNN++ (None for one channel).
    """
    if likelihood == "discretized_logistic":
        if output.shape[-1] != 2 * channels:
            raise ValueError(
                f"A discretized_logistic decoder outputs {2 * channels} values per pixel, got {output.shape}."
            )
        return {"mean": output[..., :channels], "log_scale": output[..., channels:]}
    if likelihood != "discretized_logistic_mixture":
        raise ValueError(f"{likelihood!r} has no parameters to split.")
    coefficients = channels * (channels - 1) // 2
    per_component = 1 + 2 * channels + coefficients
    if output.shape[-1] % per_component:
        raise ValueError(
            f"A discretized_logistic_mixture decoder for {channels}-channel images outputs a multiple of "
            f"{per_component} values per pixel, got {output.shape}."
        )
    k = output.shape[-1] // per_component
    pixel = output.shape[:-1]
    split = {
        "logit_weights": output[..., :k],
        "means": output[..., k : k + channels * k].reshape(*pixel, channels, k),
        "log_scales": output[..., k + channels * k : k + 2 * channels * k].reshape(*pixel, channels, k),
        "coefficients": None,
    }
    if coefficients:
        split["coefficients"] = jnp.tanh(output[..., k + 2 * channels * k :].reshape(*pixel, coefficients, k))
    return split


def make_encoder(module, gaussian: bool) -> nn.Module:
    """The encoder of an `Autoencoder` or `VAE` ``module`` (by its ``architecture``)."""
    if module.architecture == "resnet":
        return ResNetEncoder(
            module.resnet_widths, module.resnet_blocks, module.latents, module.activation, module.resnet_norm, gaussian
        )
    if module.architecture == "conv":
        return ConvEncoder(module.conv_features, module.encoder_hidden, module.latents, module.activation, gaussian)
    return Encoder(module.encoder_hidden, module.latents, module.activation, gaussian=gaussian)


def make_decoder(module) -> nn.Module:
    """The decoder of an `Autoencoder` or `VAE` ``module`` (by its ``architecture``), wrapped in
    an `AutoregressiveDecoder` when ``module.autoregressive_features`` > 0."""
    autoregressive = getattr(module, "autoregressive_features", 0) > 0
    # One output per pixel and channel, or the likelihood's parameters per pixel.
    parameters = likelihood_parameters(
        getattr(module, "likelihood", "gaussian"), module.output_shape[-1], getattr(module, "mixture_components", 10)
    )
    output_shape = (*module.output_shape[:-1], parameters)
    output_activation = module.output_activation
    if autoregressive:  # the base decoder emits a feature map of z, mixed per pixel later
        output_shape = (*module.output_shape[:-1], module.autoregressive_z_features)
        output_activation = module.activation
    if module.architecture == "resnet":
        base = ResNetDecoder(
            module.resnet_widths,
            module.resnet_blocks,
            output_shape,
            module.activation,
            module.resnet_norm,
            output_activation,
        )
    elif module.architecture == "conv":
        base = ConvDecoder(
            tuple(reversed(module.conv_features)),
            module.decoder_hidden,
            output_shape,
            module.activation,
            output_activation,
        )
    else:
        base = Decoder(module.decoder_hidden, output_shape, module.activation, output_activation)
    if not autoregressive:
        return base
    return AutoregressiveDecoder(
        base,
        module.autoregressive_features,
        module.autoregressive_kernel,
        module.autoregressive_layers,
        module.activation,
    )


class _EncoderDecoder(nn.Module):
    """The fields an `Autoencoder` and a `VAE` share (sizes come from ``config.model``)."""

    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latents: int
    output_shape: Sequence[int]
    activation: str = "relu"
    output_activation: str = "sigmoid"
    architecture: str = "mlp"  # mlp | conv | resnet
    conv_features: Sequence[int] = (32, 64)
    resnet_widths: Sequence[int] = (64, 128, 256)  # one ResNet stage per width (architecture='resnet')
    resnet_blocks: int = 2  # residual blocks per stage
    resnet_norm: str = "group"  # group | none


class Autoencoder(_EncoderDecoder):
    """Deterministic autoencoder x -> z = e(x) -> d(z).

    With ``encoder_hidden = decoder_hidden = ()`` and ``output_activation='none'`` it is
    the lecture's linear autoencoder: one linear (affine) layer each way.
    """

    def setup(self):
        self.encoder = make_encoder(self, gaussian=False)
        self.decoder = make_decoder(self)

    def __call__(self, x: jax.Array):
        """Returns ``(reconstruction, code)``."""
        z = self.encode(x)
        return self.decode(z), z

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)


PRIORS = ("standard_normal", "mixture", "vamp")


def add_variance_and_prior_params(module: nn.Module, prior_width: int) -> None:
    """In ``module.setup``: the learned decoder log-variance (``module.decoder_variance``
    'scalar' or 'per_pixel', initialised at ``log(initial_variance)``) and the parameters of a
    learned prior over ``prior_width`` latents (``module.prior`` 'mixture': its components'
    means and log-variances; 'vamp': ``prior_components`` pseudo-inputs in [0, 1], initialised
    near black as in the VampPrior paper). A `VAE`'s and a `hierarchical.LadderVAE`'s."""
    if module.decoder_variance != "fixed":
        shape = () if module.decoder_variance == "scalar" else tuple(module.output_shape)
        module.log_variance = module.param(
            "decoder_log_variance", nn.initializers.constant(math.log(module.initial_variance)), shape
        )
    if module.prior == "mixture":
        shape = (module.prior_components, prior_width)
        module.prior_means = module.param("prior_means", nn.initializers.normal(1.0), shape)
        module.prior_logvars = module.param("prior_logvars", nn.initializers.zeros, shape)
    elif module.prior == "vamp":
        near_black = lambda key, shape: 0.05 + 0.01 * jax.random.normal(key, shape)
        module.pseudo_inputs = module.param(
            "pseudo_inputs", near_black, (module.prior_components, *module.output_shape)
        )


def sample_mixture(rng: jax.Array, means: jax.Array, logvars: jax.Array, num: int) -> jax.Array:
    """``[num, d]`` draws from the equal-weight mixture of N(means[k], exp(logvars[k])), each
    ``[K, d]``: a uniform component, then its Gaussian."""
    component_key, noise_key = jax.random.split(rng)
    component = jax.random.randint(component_key, (num,), 0, means.shape[0])
    return losses.reparameterize(noise_key, means[component], logvars[component])


class Decoding(nn.Module):
    """The methods around p(x|z) that a `VAE` and a `hierarchical.LadderVAE` share. No fields: a
    subclass has ``decoder`` (`make_decoder`), ``autoregressive_features`` and, with a learned
    decoder variance, ``log_variance`` (`add_variance_and_prior_params`)."""

    @property
    def autoregressive(self) -> bool:
        """Whether p(x|z) is autoregressive: its outputs then depend on x (teacher forcing)."""
        return self.autoregressive_features > 0

    def decode(self, z: jax.Array, x: jax.Array | None = None) -> jax.Array:
        """The parameters of p(x|z) ``[b, H, W, P]`` (P: `likelihood_parameters`, C for the Gaussian
        and Bernoulli likelihoods; z is z_1 for a ladder VAE). An autoregressive decoder needs the
        image ``x`` too: each pixel's logit is conditioned on the pixels before it in ``x``."""
        if not self.autoregressive:
            return self.decoder(z)
        if x is None:
            raise ValueError(
                "An autoregressive decoder gives p(x_i | z, x_<i): pass the image x to decode, "
                "or draw images with objectives.vae_fns(...).decode_image."
            )
        return self.decoder(z, x)

    def latent_features(self, z: jax.Array) -> jax.Array:
        """An autoregressive decoder's feature map of z (computed once per z when sampling)."""
        return self.decoder.latent_features(z)

    def pixel_logits(self, latent_features: jax.Array, x: jax.Array) -> jax.Array:
        """An autoregressive decoder's logits given `latent_features` and the image so far."""
        return self.decoder.logits(latent_features, x)

    def variance(self) -> jax.Array:
        """The learned decoder variance c (scalar or per pixel); only when it is learned."""
        return jnp.exp(self.log_variance)


class VAE(_EncoderDecoder, Decoding):
    """Variational autoencoder: q(z|x) = N(mean(x), exp(logvar(x))), prior p(z).

    ``decoder_variance`` 'scalar' or 'per_pixel' adds a learned log-variance parameter
    (the lecture's c, learned instead of fixed; initialised at ``log(initial_variance)``).

    ``prior`` (`PRIORS`): 'standard_normal' N(0, I); 'mixture', an equal-weight mixture of
    ``prior_components`` learned diagonal Gaussians; 'vamp', the VampPrior (Tomczak &
    Welling 2018), the mixture of the encoder's posteriors q(z|u_k) at ``prior_components``
    learned pseudo-inputs u_k (images in [0, 1], initialised near black as in the paper).
    """

    decoder_variance: str = "fixed"  # fixed | scalar | per_pixel
    initial_variance: float = 0.05
    # > 0: p(x|z) is autoregressive over pixels (`AutoregressiveDecoder`, Bernoulli logits).
    autoregressive_features: int = 0
    autoregressive_kernel: int = 7
    autoregressive_layers: int = 1
    autoregressive_z_features: int = 4
    prior: str = "standard_normal"  # standard_normal | mixture | vamp
    prior_components: int = 500
    # p(x|z): what the decoder outputs per pixel (`likelihood_parameters`).
    likelihood: str = "gaussian"  # gaussian | bernoulli | discretized_logistic | discretized_logistic_mixture
    mixture_components: int = 10  # K of discretized_logistic_mixture

    def setup(self):
        self.encoder = make_encoder(self, gaussian=True)
        self.decoder = make_decoder(self)
        add_variance_and_prior_params(self, self.latents)

    def __call__(self, x: jax.Array, rng: jax.Array):
        """Encodes, samples z = mean + std * xi with ``rng``, decodes.

        Returns ``(decoder_output, mean, logvar)``; shapes ``[b, H, W, P]`` (see `decode`), ``[b, latents]``.
        """
        mean, logvar = self.encode(x)
        z = losses.reparameterize(rng, mean, logvar)
        return self.decode(z, x), mean, logvar

    def encode(self, x: jax.Array):
        """``(mean, logvar)`` of q(z|x), each ``[b, latents]``."""
        return self.encoder(x)

    def prior_mixture(self) -> tuple[jax.Array, jax.Array]:
        """``(means, logvars)``, each ``[prior_components, latents]``, of a mixture prior: the
        learned components, or the encoder's posteriors at the pseudo-inputs (clipped to [0, 1],
        the paper's hardtanh)."""
        if self.prior == "mixture":
            return self.prior_means, self.prior_logvars
        return self.encoder(jnp.clip(self.pseudo_inputs, 0.0, 1.0))

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z) in nats for ``z`` ``[..., latents]``; shape ``z.shape[:-1]``."""
        if self.prior == "standard_normal":
            return losses.standard_normal_log_prob(z)
        return losses.gaussian_mixture_log_prob(z, *self.prior_mixture())

    def sample_prior(self, rng: jax.Array, num: int) -> jax.Array:
        """``[num, latents]`` draws from p(z) (a mixture: a uniform component, then its Gaussian)."""
        if self.prior == "standard_normal":
            return jax.random.normal(rng, (num, self.latents))
        return sample_mixture(rng, *self.prior_mixture(), num)

    def generate(self, rng: jax.Array, num: int) -> jax.Array:
        """Decoder outputs for ``num`` latents drawn from the prior (`sample_prior`)."""
        return self.decode(self.sample_prior(rng, num))


def output_activation_for(likelihood: str, requested: str = "auto") -> str:
    """Decoder output activation: logits for Bernoulli, sigmoid means for grey levels, none
    (unbounded means, log-scales and logits) for the discretised logistics."""
    if requested != "auto":
        return requested
    return "none" if likelihood == "bernoulli" or likelihood in DISCRETIZED_LIKELIHOODS else "sigmoid"


def build_model(
    model_config, likelihood: str, output_shape: Sequence[int], initial_variance: float = 0.05
) -> nn.Module:
    """The `VAE` or `Autoencoder` described by ``config.model`` (of a resolved config,
    `vae_jax.config.resolve`: every key present) for images of ``output_shape``.

    ``initial_variance`` (the config's c) starts a learned decoder variance. A VAE with
    ``model.hierarchy_latents`` set is a `hierarchical.LadderVAE` (``model.latents`` unused).
    """
    shared = dict(
        encoder_hidden=tuple(model_config.encoder_hidden),
        decoder_hidden=tuple(model_config.decoder_hidden),
        output_shape=tuple(output_shape),
        activation=model_config.activation,
        output_activation=output_activation_for(likelihood, model_config.output_activation),
    )
    kwargs = dict(
        **shared,
        latents=model_config.latents,
        architecture=model_config.architecture,
        conv_features=tuple(model_config.conv_features),
        resnet_widths=tuple(model_config.resnet_widths),
        resnet_blocks=model_config.resnet_blocks,
        resnet_norm=model_config.resnet_norm,
    )
    if model_config.kind == "vae":
        vae_kwargs = dict(
            decoder_variance=model_config.decoder_variance,
            initial_variance=initial_variance,
            autoregressive_features=model_config.autoregressive_features,
            autoregressive_kernel=model_config.autoregressive_kernel,
            autoregressive_layers=model_config.autoregressive_layers,
            autoregressive_z_features=model_config.autoregressive_z_features,
            prior=model_config.prior,
            prior_components=model_config.prior_components,
            likelihood=likelihood,
            mixture_components=model_config.mixture_components,
        )
        if model_config.hierarchy_latents:
            from vae_jax import hierarchical  # it imports this module

            return hierarchical.LadderVAE(
                **shared,
                **vae_kwargs,
                hierarchy_latents=tuple(model_config.hierarchy_latents),
                hierarchy_hidden=tuple(model_config.hierarchy_hidden),
            )
        return VAE(**kwargs, **vae_kwargs)
    if model_config.kind == "ae":
        return Autoencoder(**kwargs)
    raise ValueError(f"build_model makes 'vae' or 'ae' models, got model.kind={model_config.kind!r}.")
