"""The one registry of model kinds: ``config.model`` -> the file that builds the model.

A kind is one file of this package with ``build(config, image_shape) -> ModelFns`` (its Flax
module and its objective; `vae_jax.models.interface`). Adding a kind is that file and one line
in `KINDS`. ``config.model.kind`` names the kind, except that a VAE with
``config.model.hierarchy_latents`` set is the ladder VAE, so every existing ``config.json``
(the shipped ones too) still means the same model.
"""

from __future__ import annotations

from vae_jax.models import autoencoder, interface, ladder, pca, vae

# kind -> its file (``build(config, image_shape)``).
KINDS = {
    "vae": vae,
    "ladder": ladder,
    "ae": autoencoder,
    "pca": pca,
}
# The values of ``config.model.kind`` (the ladder is a VAE with ``hierarchy_latents``).
CONFIG_KINDS = ("vae", "ae", "pca")


def kind_of(model_config) -> str:
    """The registry's kind of ``config.model``: its ``kind``, or 'ladder' for a VAE with
    ``hierarchy_latents`` set."""
    if model_config.kind == "vae" and tuple(model_config.get("hierarchy_latents", ())):
        return "ladder"
    return model_config.kind


def build(config, image_shape) -> interface.ModelFns:
    """The `interface.ModelFns` of the model of ``config`` (a resolved config,
    `vae_jax.config.resolve`) for images of ``image_shape`` ``(H, W, C)``."""
    kind = kind_of(config.model)
    if kind not in KINDS:
        raise ValueError(
            f"config.model.kind={config.model.kind!r} is not a model kind: expected one of {CONFIG_KINDS}."
        )
    return KINDS[kind].build(config, tuple(image_shape))


def is_fitted(model_config) -> bool:
    """Whether the model of ``config.model`` is fitted in closed form (PCA: no epochs, no batches)
    rather than trained by gradient steps."""
    return kind_of(model_config) == "pca"
