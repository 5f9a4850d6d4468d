"""The encoder and decoder of a one-layer model, chosen by its ``architecture`` (MLP, conv,
ResNet; the decoder wrapped in the autoregressive head when asked), and the fields an
autoencoder and a VAE share."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from flax import linen as nn

from vae_jax.models import autoregressive, layers, likelihoods, resnet


def make_encoder(module, gaussian: bool) -> nn.Module:
    """The encoder of an `autoencoder.Autoencoder` or `vae.VAE` ``module`` (by its ``architecture``)."""
    if module.architecture == "resnet":
        return resnet.ResNetEncoder(
            module.resnet_widths, module.resnet_blocks, module.latents, module.activation, module.resnet_norm, gaussian
        )
    if module.architecture == "conv":
        return layers.ConvEncoder(
            module.conv_features,
            module.encoder_hidden,
            module.latents,
            module.activation,
            gaussian,
            module.dropout_rate,
        )
    return layers.Encoder(
        module.encoder_hidden, module.latents, module.activation, gaussian=gaussian, dropout_rate=module.dropout_rate
    )


def make_decoder(module) -> nn.Module:
    """The decoder of an `autoencoder.Autoencoder` or `vae.VAE` ``module`` (by its ``architecture``), wrapped in
    an `autoregressive.AutoregressiveDecoder` when ``module.autoregressive_features`` > 0."""
    is_autoregressive = getattr(module, "autoregressive_features", 0) > 0
    # One output per pixel and channel, or the likelihood's parameters per pixel.
    parameters = likelihoods.likelihood_parameters(
        getattr(module, "likelihood", "gaussian"), module.output_shape[-1], getattr(module, "mixture_components", 10)
    )
    output_shape = (*module.output_shape[:-1], parameters)
    output_activation = module.output_activation
    if is_autoregressive:  # the base decoder emits a feature map of z, mixed per pixel later
        output_shape = (*module.output_shape[:-1], module.autoregressive_z_features)
        output_activation = module.activation
    if module.architecture == "resnet":
        base = resnet.ResNetDecoder(
            module.resnet_widths,
            module.resnet_blocks,
            output_shape,
            module.activation,
            module.resnet_norm,
            output_activation,
        )
    elif module.architecture == "conv":
        base = layers.ConvDecoder(
            tuple(reversed(module.conv_features)),
            module.decoder_hidden,
            output_shape,
            module.activation,
            output_activation,
            module.dropout_rate,
        )
    else:
        base = layers.Decoder(
            module.decoder_hidden, output_shape, module.activation, output_activation, module.dropout_rate
        )
    if not is_autoregressive:
        return base
    return autoregressive.AutoregressiveDecoder(
        base,
        module.autoregressive_features,
        module.autoregressive_kernel,
        module.autoregressive_layers,
        module.activation,
    )


class EncoderDecoder(nn.Module):
    """The fields an `autoencoder.Autoencoder` and a `vae.VAE` share (sizes come from ``config.model``)."""

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
    # Dropout after every hidden layer of the MLP (and conv models') dense parts, in training steps only.
    dropout_rate: float = 0.0


def module_fields(module_class, model_config, **given) -> dict:
    """Keyword arguments of a model module built from ``config.model``: ``given``, and every
    other field of ``module_class`` that ``model_config`` has a key of the same name for
    (sequences as tuples: a Flax module's fields must be hashable). So a new module field is
    configured by adding its key to `vae_jax.config`, nothing else."""
    names = {f.name for f in dataclasses.fields(module_class)} - {"parent", "name"} - set(given)
    values = {name: model_config[name] for name in sorted(names) if name in model_config}
    return {**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}, **given}


def module_from_config(module_class, config, image_shape, **given):
    """The ``module_class`` model of ``config`` for images of ``image_shape``: its fields from
    ``config.model`` (`module_fields`), the image shape, the decoder's output activation for
    ``config.likelihood`` (`likelihoods.output_activation_for`), and ``given``."""
    output_activation = likelihoods.output_activation_for(config.likelihood, config.model.output_activation)
    return module_class(
        **module_fields(
            module_class, config.model, output_shape=tuple(image_shape), output_activation=output_activation, **given
        )
    )
