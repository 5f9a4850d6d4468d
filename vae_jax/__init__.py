"""vae_jax: PCA, autoencoders and VAEs in JAX/Flax, following a classic VAE lecture.

`vae_jax.losses` needs only jax and numpy and can be copied into other projects.
"""
