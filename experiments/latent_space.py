"""AE vs VAE latent spaces in 2-D: holes, continuity and completeness (lecture, sections 4-6).

Command:
  python -m experiments.latent_space [--workdir=runs/lecture] [--epochs=10]
      [--dataset=mnist --data_dir=DIR]   # grey-level MNIST, where its IDX files exist
It trains an MLP AE and an MLP VAE with 2 latents, 10 epochs each on Fashion-MNIST, then
computes the metrics; a re-run reuses both trained models (about 1.5 minutes on a 2-core CPU).
Runtime and result: docs/results.md, the lecture's experiments.

What it shows: the lecture's claim "the latent space of a plain autoencoder has holes; the
VAE's does not", as pictures and as numbers:
- ``latent_space_scatter.png``: test codes (posterior means for the VAE) coloured by label,
  AE and VAE side by side;
- ``latent_space_grid.png``: decodings of a regular grid over the region each model's codes
  occupy (0.5% to 99.5% quantiles of the test codes in each coordinate);
- ``latent_space_samples.png``: decodings of random latent samples (the AE's from a Gaussian
  fitted to its codes, the VAE's from its prior N(0, I));
- continuity (`vae_jax.evaluation.latent_geometry.continuity`): output change per code-std of latent movement
  along straight paths between test codes, and the largest single-step jump;
- completeness (`vae_jax.evaluation.latent_geometry.completeness`): a logistic-regression classifier trained on
  real training images judges decoded samples (mean confidence relative to real test
  images), and the fraction of samples that land in empty regions of the training codes,
  under N(0, I) and under a Gaussian fitted to the codes.
The Markdown states whether the numbers support the claim.
"""

from __future__ import annotations

import jax
import numpy as np
from absl import flags
from jax.tree_util import Partial
from matplotlib.figure import Figure

from configs import ae as ae_config
from configs import vae as vae_config
from experiments import cli, common
from vae_jax.data import datasets
from vae_jax.evaluation import figures, latent_geometry

NAME = "latent_space"
NUM_SAMPLES = flags.DEFINE_integer("latent_samples", 2000, "Latent samples per distribution for completeness.")
NUM_PAIRS = flags.DEFINE_integer("latent_pairs", 256, "Test-code pairs (straight paths) for continuity.")
GRID = 15
CLASS_NAMES = {
    "fashion_mnist": ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"],
}


def _configs(dataset: str, epochs: int):
    out = {}
    for name, module in (("AE", ae_config), ("VAE", vae_config)):
        config = module.get_config()
        common.set_data(config, dataset)
        config.model.latents = 2
        config.num_epochs = epochs
        config.checkpoint_every_epochs = max(1, epochs // 2)
        out[name] = config
    return out


def _grid(codes: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """A GRID x GRID grid over the codes' 0.5%-99.5% box, rows from top (high z[1]) to bottom."""
    (x0, y0), (x1, y1) = np.percentile(codes, [0.5, 99.5], axis=0)
    xs, ys = np.linspace(x0, x1, GRID), np.linspace(y1, y0, GRID)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
    return grid, [x0, x1, y0, y1]


def save_scatter(path, codes, labels, boxes, class_names):
    fig = Figure(figsize=(6 * len(codes), 5))
    axes = fig.subplots(1, len(codes))
    for ax, (name, z) in zip(axes, codes.items()):
        points = ax.scatter(z[:, 0], z[:, 1], s=1.5, c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.6)
        x0, x1, y0, y1 = boxes[name]
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="black", linewidth=0.8, linestyle="--")
        ax.set_xlabel("z[0]")
        ax.set_ylabel("z[1]")
        ax.set_title(f"{name}: test codes{' (posterior means)' if name == 'VAE' else ''}")
    bar = fig.colorbar(points, ax=axes, ticks=range(10))
    if class_names:
        bar.ax.set_yticklabels(class_names)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_image_panels(path, panels, title):
    """Side-by-side grey images; ``panels`` maps a title to ``(canvas, extent or None)``."""
    fig = Figure(figsize=(6 * len(panels), 6.3))
    axes = fig.subplots(1, len(panels))
    for ax, (name, (canvas, extent)) in zip(axes, panels.items()):
        ax.imshow(
            np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1, extent=extent, aspect="auto", interpolation="nearest"
        )
        ax.set_title(name)
        if extent is None:
            ax.axis("off")
        else:
            ax.set_xlabel("z[0]")
            ax.set_ylabel("z[1]")
    fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def claim_checks(results) -> dict[str, bool]:
    """The lecture's claim as numbers, from ``results`` (``{"AE": ..., "VAE": ...}``, each with
    ``completeness`` and ``continuity`` as in this experiment's JSON): with each model sampled the
    way it would be used to generate (AE: a Gaussian fitted to its codes; VAE: its prior), the AE's
    samples hit empty regions more often, the VAE's look at least as real to the classifier, and
    the AE's decodings are less continuous (larger worst jumps). Maps each check's text to whether
    it holds."""
    ae_samples = results["AE"]["completeness"]["fitted_gaussian"]
    vae_samples = results["VAE"]["completeness"]["standard_normal"]
    ae_jump, vae_jump = results["AE"]["continuity"]["max_jump"], results["VAE"]["continuity"]["max_jump"]
    ae_empty, vae_empty = ae_samples["empty_fraction"], vae_samples["empty_fraction"]
    ae_conf, vae_conf = ae_samples["confidence_ratio"], vae_samples["confidence_ratio"]
    return {
        "AE samples land in empty regions more often than VAE samples": ae_empty > vae_empty,
        "VAE samples look at least as real to the classifier (confidence ratio at most 0.01 lower)": vae_conf
        >= ae_conf - 0.01,
        "VAE decodings change more evenly along paths (smaller mean largest jump)": vae_jump < ae_jump,
    }


def main(argv):
    del argv
    cli.check_flags(
        **common.flag_rules("workdir", "dataset", "data_dir", "epochs"),
        latent_samples=cli.at_least(1),
        latent_pairs=cli.at_least(1),
    )
    dataset = common.flag_or(common.DATASET, "fashion_mnist")
    epochs = common.flag_or(common.EPOCHS, 10)
    splits = datasets.load_dataset(dataset, data_dir=common.DATA_DIR.value or None)
    train_images, train_labels = splits["train"].images, splits["train"].labels
    test_images, test_labels = splits["test"].images, splits["test"].labels
    image_shape = train_images.shape[1:]
    key = jax.random.key(0)

    classifier = latent_geometry.fit_image_classifier(train_images, train_labels, max_train=5000)
    classifier_accuracy = float(classifier.score(test_images.reshape(len(test_images), -1), test_labels))

    results, codes, boxes, grids, samples = {}, {}, {}, {}, {}
    for name, config in _configs(dataset, epochs).items():
        run = f"{NAME}/{dataset}_{name.lower()}_z2_e{epochs}"
        fns, model, params, final = common.train_and_restore(config, common.workdir(run))
        encode, decode = Partial(fns.encode, params), Partial(fns.decode_image, params)
        test_codes = latent_geometry.encode_images(encode, test_images)
        train_codes = latent_geometry.encode_images(encode, train_images)
        cont = latent_geometry.continuity(
            encode, decode, test_images, jax.random.fold_in(key, 1), num_pairs=NUM_PAIRS.value
        )
        comp = latent_geometry.completeness(
            decode, classifier, train_codes, test_images, jax.random.fold_in(key, 2), num_samples=NUM_SAMPLES.value
        )
        grid, boxes[name] = _grid(test_codes)
        grids[name] = np.asarray(fns.decode_image(params, grid))
        prior = "standard_normal" if name == "VAE" else "fitted_gaussian"
        sampler = (
            latent_geometry.standard_normal_sampler(2)
            if name == "VAE"
            else latent_geometry.fitted_gaussian_sampler(train_codes)
        )
        samples[name] = np.asarray(fns.decode_image(params, sampler(jax.random.fold_in(key, 3), 100)))
        codes[name] = test_codes
        results[name] = {
            "test_squared_error": final["squared_error"],
            "code_mean": test_codes.mean(0),
            "code_std": test_codes.std(0),
            "continuity": {k: v for k, v in cont.items() if k not in ("ratios", "pairs")},
            "completeness": comp,
            "natural_sampler": prior,
        }
        if name == "VAE":  # a VAE fills more than its posterior means: compare with posterior samples too
            mean, std = common.posterior(fns, params, train_images)
            reference = common.posterior_samples(mean, std, jax.random.fold_in(key, 4))
            reference = reference[np.random.default_rng(0).permutation(len(reference))[:10_000]]
            prior_z = np.asarray(jax.random.normal(jax.random.fold_in(key, 5), (NUM_SAMPLES.value, 2)))
            results[name]["prior_empty_fraction_vs_posterior_samples"] = latent_geometry.empty_region_fraction(
                prior_z, reference
            )["empty_fraction"]
            results[name]["posterior_std"] = std.mean(axis=0)

    class_names = CLASS_NAMES.get(dataset)
    save_scatter(common.output_path(f"{NAME}_scatter.png"), codes, test_labels, boxes, class_names)
    save_image_panels(
        common.output_path(f"{NAME}_grid.png"),
        {
            f"{name}: decoded {GRID}x{GRID} grid over the dashed box": (
                figures.tile(grids[name].reshape(-1, *image_shape), GRID),
                boxes[name],
            )
            for name in grids
        },
        "decodings of a grid over each latent plane",
    )
    save_image_panels(
        common.output_path(f"{NAME}_samples.png"),
        {
            "AE: z ~ Gaussian fitted to its codes": (figures.tile(samples["AE"], 10), None),
            "VAE: z ~ prior N(0, I)": (figures.tile(samples["VAE"], 10), None),
        },
        "decoded random latent samples",
    )

    ae, vae = results["AE"], results["VAE"]
    numbers = {
        "dataset": dataset,
        "epochs": epochs,
        "classifier_test_accuracy": classifier_accuracy,
        "test_confidence": ae["completeness"]["test_confidence"],
        **results,
    }

    def comp(model, dist, key_):
        return results[model]["completeness"][dist][key_]

    rows = [
        ["test squared error per image", ae["test_squared_error"], vae["test_squared_error"]],
        [
            "code std per dimension (test)",
            ", ".join(f"{s:.3g}" for s in ae["code_std"]),
            ", ".join(f"{s:.3g}" for s in vae["code_std"]),
        ],
        [
            "continuity: output change per code-std step (mean)",
            ae["continuity"]["mean_ratio_normalised"],
            vae["continuity"]["mean_ratio_normalised"],
        ],
        [
            "continuity: same, max over all steps",
            ae["continuity"]["max_ratio_normalised"],
            vae["continuity"]["max_ratio_normalised"],
        ],
        [
            "continuity: largest single step / whole path change (mean over paths; uniform = 0.05)",
            ae["continuity"]["max_jump"],
            vae["continuity"]["max_jump"],
        ],
        [
            "completeness, z ~ N(0, I): classifier confidence ratio",
            comp("AE", "standard_normal", "confidence_ratio"),
            comp("VAE", "standard_normal", "confidence_ratio"),
        ],
        [
            "completeness, z ~ N(0, I): empty-region fraction",
            comp("AE", "standard_normal", "empty_fraction"),
            comp("VAE", "standard_normal", "empty_fraction"),
        ],
        [
            "completeness, z ~ N(0, I): empty-region fraction against posterior samples instead of means",
            "n/a (point codes)",
            vae["prior_empty_fraction_vs_posterior_samples"],
        ],
        [
            "completeness, z ~ fitted Gaussian: classifier confidence ratio",
            comp("AE", "fitted_gaussian", "confidence_ratio"),
            comp("VAE", "fitted_gaussian", "confidence_ratio"),
        ],
        [
            "completeness, z ~ fitted Gaussian: empty-region fraction",
            comp("AE", "fitted_gaussian", "empty_fraction"),
            comp("VAE", "fitted_gaussian", "empty_fraction"),
        ],
    ]

    ae_empty, vae_empty = (
        comp("AE", "fitted_gaussian", "empty_fraction"),
        comp("VAE", "standard_normal", "empty_fraction"),
    )
    ae_conf, vae_conf = (
        comp("AE", "fitted_gaussian", "confidence_ratio"),
        comp("VAE", "standard_normal", "confidence_ratio"),
    )
    checks = claim_checks(results)
    numbers["claim_checks"] = checks
    supported = [text for text, ok in checks.items() if ok]
    refuted = [text for text, ok in checks.items() if not ok]
    verdict = (
        f"With each model sampled as it would be for generation (the AE from a Gaussian fitted to its "
        f"codes, the VAE from its prior N(0, I)): {ae_empty:.1%} of the AE's samples land in empty regions "
        f"against {vae_empty:.1%} of the VAE's (about 1% is expected when samples follow the codes' own "
        f"distribution), with classifier confidence ratios {ae_conf:.3f} (AE) and {vae_conf:.3f} (VAE)"
    )
    verdict += " (a difference too small to separate the two models)." if abs(ae_conf - vae_conf) < 0.02 else "."
    if not refuted:
        verdict += " All three checks support the lecture's claim: " + "; ".join(supported) + "."
    else:
        verdict += (
            " Not every number supports the lecture's claim. Supported: "
            + ("; ".join(supported) or "none")
            + ". Not supported: "
            + "; ".join(refuted)
            + "."
        )
    if vae_empty > 0.05:
        verdict += (
            f" The VAE's latent space is not free of holes either: {vae_empty:.1%} of its prior samples lie "
            "farther from every training code than the 99% threshold ("
            f"{vae['prior_empty_fraction_vs_posterior_samples']:.1%} against one posterior sample per training "
            "image instead of the means), so 'fewer and smaller holes' is what "
            "these numbers show, not 'no holes'."
        )
    markdown = "\n\n".join(
        [
            f"## AE vs VAE latent space ({dataset}, 2 latents)",
            f"An MLP autoencoder (`configs/ae.py`) and an MLP VAE (`configs/vae.py`, c = 0.05, beta = 1), both with 2 "
            f"latents and {epochs} epochs. Continuity: {NUM_PAIRS.value} straight paths between random test codes, 20 "
            f"steps each (`latent_geometry.continuity`; the change is in grey levels, L2 over pixels, per code-std of latent "
            f"movement). Completeness: {NUM_SAMPLES.value} latent samples per distribution, judged by a "
            f"logistic-regression classifier trained on 5,000 real training images (test accuracy "
            f"{classifier_accuracy:.1%}, mean confidence {numbers['test_confidence']:.3f} on real test images); the "
            "confidence ratio is the samples' mean confidence over the real images', and a sample is in an empty region "
            "when it is farther from every training code than 99% of the codes are from their nearest neighbour.",
            common.markdown_table(["", "AE", "VAE"], rows),
            verdict,
            f"![test codes of the AE and the VAE]({NAME}_scatter.png)",
            f"![decodings of a grid over each latent plane]({NAME}_grid.png)",
            f"![decoded random latent samples]({NAME}_samples.png)",
        ]
    )
    common.write_results(NAME, numbers, markdown)


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
