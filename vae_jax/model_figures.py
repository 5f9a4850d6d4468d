"""The figures of a trained model: reconstructions, prior samples, and for 2 latents the
latent scatter and the manifold grid (`vae_jax.figures` draws them)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import figures, models


def save_figures(config, fns, params, splits, workdir: str, key: jax.Array) -> None:
    """Reconstructions and samples; for 2 latents also a latent scatter and a manifold grid."""
    test = splits["test"]
    n = config.num_figure_examples
    originals = test.images[:n]
    reconstructions = fns.decode_image(params, fns.encode(params, originals))
    figures.save_reconstructions(os.path.join(workdir, "reconstructions.png"), originals, np.asarray(reconstructions))

    codes = np.asarray(fns.encode(params, test.images[:5000]))
    # An autoregressive decoder's images are its greedy decodings (each pixel its likelier value).
    decoded = "greedy decodings of" if config.model.autoregressive_features > 0 else "decoded"
    if fns.sample_prior is not None:  # a VAE: its prior
        prior = {"standard_normal": "N(0, I)", "mixture": "(mixture of Gaussians)", "vamp": "(VampPrior)"}
        latents = fns.sample_prior(params, key, 64)
        title = f"{decoded} samples from the prior {prior[config.model.prior]}"
    else:
        noise = jax.random.normal(key, (64, codes.shape[1]))
        latents, title = codes.mean(0) + codes.std(0) * noise, f"{decoded} samples of N(code mean, code std)"
    if config.likelihood in models.DISCRETIZED_LIKELIHOODS and fns.sample_images is not None:
        # 8-bit likelihoods: images drawn from p(x|z) (their means are blurred averages of levels).
        images = fns.sample_images(params, jax.random.fold_in(key, 1), latents)
        title = f"x ~ p(x|z), {title.replace('decoded samples', 'z drawn')}"
    else:
        images = fns.decode_image(params, latents)
    figures.save_samples(os.path.join(workdir, "samples.png"), np.asarray(images), title)

    if codes.shape[1] == 2:
        labels = None if test.labels is None else test.labels[: len(codes)]
        figures.save_latent_scatter(
            os.path.join(workdir, "latent_scatter.png"), codes, labels, f"test codes of the {config.model.kind.upper()}"
        )
        grid_size = 15
        if fns.standard_normal_prior:  # equal prior mass between grid lines
            axes = [jax.scipy.stats.norm.ppf(jnp.linspace(0.05, 0.95, grid_size))] * 2
        else:  # the range the codes occupy
            axes = [jnp.linspace(*np.percentile(codes[:, d], [1, 99]), grid_size) for d in range(2)]
        grid = jnp.stack(jnp.meshgrid(axes[0], axes[1][::-1]), axis=-1).reshape(-1, 2)
        figures.save_manifold(
            os.path.join(workdir, "manifold.png"),
            np.asarray(fns.decode_image(params, grid)),
            grid_size,
            "decodings of a grid over the latent plane",
        )
