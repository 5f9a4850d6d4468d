"""vae_jax: PCA, autoencoders and VAEs in JAX/Flax, following a classic VAE lecture.

``vae_jax.load(path)`` gives a trained run or a shipped export as a `vae_jax.trained.TrainedModel`
(encode, decode, sample, reconstruct, log_prob). `vae_jax.losses` needs only jax and numpy and
can be copied into other projects: importing it (or the package) does not import flax or optax.
"""


def __getattr__(name: str):
    """``vae_jax.load``, imported on first use (PEP 562), so that ``import vae_jax.losses`` stays
    free of flax, optax and orbax."""
    if name == "load":
        from vae_jax import trained

        return trained.load
    raise AttributeError(f"module 'vae_jax' has no attribute {name!r}")
