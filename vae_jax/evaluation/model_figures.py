"""The figures of a trained model: reconstructions, prior samples, and for 2 latents the
latent scatter and the manifold grid (`vae_jax.evaluation.figures` draws them).

An autoregressive decoder (`autoregressive.AutoregressiveDecoder`) has no image mean to show: its
figures are true samples x ~ p(x|z), each pixel drawn in raster order from its Bernoulli given
z and the pixels drawn before it (`vae_jax.models.autoregressive.sample_autoregressive_images`; ``config.figure_decoding =
'sample'``, the default), or its greedy decodings, each pixel set to its likelier value
(`autoregressive.greedy_autoregressive_images`; ``'greedy'``). The figures' titles say which.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.evaluation import figures
from vae_jax.models import likelihoods

# config.figure_decoding: what an autoregressive decoder's figures show.
FIGURE_DECODINGS = ("sample", "greedy")
SAMPLED = "samples x ~ p(x|z)"
GREEDY = "greedy decodings (each pixel its likelier value)"


def figure_decoder(config, fns, params):
    """``(decode, kind)``: ``decode(z, key)`` -> the images the figures show for latents ``z``,
    and ``kind``: ``'mean'`` (`ModelFns.decode_image`: p(x|z)'s mean, or a PCA/AE decoding), or
    for an autoregressive decoder (``fns.autoregressive``) ``'sample'`` (exact draws,
    ``fns.sample_images``) or ``'greedy'`` as ``config.figure_decoding`` says."""
    if not fns.autoregressive:
        return (lambda z, key: fns.decode_image(params, z)), "mean"
    decoding = config.figure_decoding
    if decoding not in FIGURE_DECODINGS:
        raise ValueError(f"config.figure_decoding is 'sample' or 'greedy', got {decoding!r}.")
    if decoding == "greedy":
        return (lambda z, key: fns.decode_image(params, z)), "greedy"
    sample = jax.jit(fns.sample_images)
    return (lambda z, key: sample(params, key, z)), "sample"


def save_figures(config, fns, params, splits, workdir: str, key: jax.Array) -> None:
    """Reconstructions and samples; for 2 latents also a latent scatter and a manifold grid."""
    test = splits["test"]
    n = config.num_figure_examples
    originals = test.images[:n]
    decode, kind = figure_decoder(config, fns, params)
    reconstructions = decode(fns.encode(params, originals), jax.random.fold_in(key, 2))
    shown = {
        "mean": "reconstructions",
        "sample": "x ~ p(x|z) at their posterior means",
        "greedy": f"{GREEDY} of their posterior means",
    }[kind]
    figures.save_reconstructions(
        os.path.join(workdir, "reconstructions.png"),
        originals,
        np.asarray(reconstructions),
        title=f"test images (top) and {shown} (bottom)",
    )

    codes = np.asarray(fns.encode(params, test.images[:5000]))
    if fns.sample_prior is not None:  # a VAE: its prior (a ladder's: z_1 of a draw of every layer)
        latents, drawn = fns.sample_prior(params, key, 64), fns.prior_description
    else:
        noise = jax.random.normal(key, (64, codes.shape[1]))
        latents, drawn = codes.mean(0) + codes.std(0) * noise, "N(code mean, code std)"
    if kind == "sample":
        images, title = decode(latents, jax.random.fold_in(key, 1)), f"{SAMPLED}, z from {drawn}"
    elif kind == "greedy":
        images, title = decode(latents, None), f"{GREEDY} of z from {drawn}"
    elif config.likelihood in likelihoods.DISCRETIZED_LIKELIHOODS and fns.sample_images is not None:
        # 8-bit likelihoods: images drawn from p(x|z) (their means are blurred averages of levels).
        images = fns.sample_images(params, jax.random.fold_in(key, 1), latents)
        title = f"x ~ p(x|z), z drawn from {drawn}"
    else:
        images, title = decode(latents, None), f"decoded samples from {drawn}"
    figures.save_samples(os.path.join(workdir, "samples.png"), np.asarray(images), title)

    if codes.shape[1] == 2:
        labels = None if test.labels is None else test.labels[: len(codes)]
        figures.save_latent_scatter(
            os.path.join(workdir, "latent_scatter.png"), codes, labels, f"test codes of the {fns.label}"
        )
        grid_size = 15
        if fns.standard_normal_prior:  # equal prior mass between grid lines
            axes = [jax.scipy.stats.norm.ppf(jnp.linspace(0.05, 0.95, grid_size))] * 2
        else:  # the range the codes occupy
            axes = [jnp.linspace(*np.percentile(codes[:, d], [1, 99]), grid_size) for d in range(2)]
        grid = jnp.stack(jnp.meshgrid(axes[0], axes[1][::-1]), axis=-1).reshape(-1, 2)
        shown = {"mean": "decodings", "sample": SAMPLED, "greedy": GREEDY}[kind]
        figures.save_manifold(
            os.path.join(workdir, "manifold.png"),
            np.asarray(decode(grid, jax.random.fold_in(key, 3))),
            grid_size,
            f"{shown} at a grid over the latent plane"
            if kind == "sample"
            else f"{shown} of a grid over the latent plane",
        )
