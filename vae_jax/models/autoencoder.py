"""The deterministic autoencoder x -> z = e(x) -> d(z), trained on the squared error; with no
hidden layers and no output activation it is the lecture's linear autoencoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax.models import coders, likelihoods
from vae_jax.models.interface import ModelFns


class Autoencoder(coders.EncoderDecoder):
    """Deterministic autoencoder x -> z = e(x) -> d(z).

    With ``encoder_hidden = decoder_hidden = ()`` and ``output_activation='none'`` it is
    the lecture's linear autoencoder: one linear (affine) layer each way.
    """

    def setup(self):
        self.encoder = coders.make_encoder(self, gaussian=False)
        self.decoder = coders.make_decoder(self)

    def __call__(self, x: jax.Array):
        """Returns ``(reconstruction, code)``."""
        z = self.encode(x)
        return self.decode(z), z

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)


def fns(model: Autoencoder, config) -> ModelFns:
    """`ModelFns` of an `Autoencoder` trained on the squared error ||x - d(e(x))||^2."""
    del config

    def per_example_metrics(params, x, rng, hyper=None, training=False):
        del hyper  # no KL term
        rngs = {"dropout": rng} if training and model.dropout_rate else None  # the step's dropout masks
        return likelihoods.squared_error_metrics(x, model.apply(params, x, rngs=rngs)[0])

    def encode(params, x):
        return model.apply(params, x, method=model.encode)

    def decode_image(params, z):
        return model.apply(params, z, method=model.decode)

    return ModelFns(
        per_example_metrics,
        encode,
        decode_image,
        standard_normal_prior=False,
        init=lambda key: model.init(key, jnp.zeros((1, *model.output_shape), jnp.float32)),
        module=model,
        label="AE",
        latent_sizes=(model.latents,),
    )


def build(config, image_shape) -> ModelFns:
    """The `ModelFns` of the autoencoder of ``config.model`` for images of ``image_shape``."""
    module = coders.module_from_config(Autoencoder, config, image_shape)
    return fns(module, config)
