"""PCA vs the linear autoencoder: the same subspace, a different basis (lecture, section 3).

Command:
  python -m experiments.pca_vs_linear_ae [--workdir=runs/lecture] [--dataset=digits]
      [--latents=10] [--epochs=20] [--learning_rate=3e-3]
It fits PCA (in seconds) and trains the linear AE for 20 epochs of Fashion-MNIST; a re-run
reuses both fitted models from ``<workdir>/workdirs/`` (about 15 s on a 2-core CPU).
Runtime and result: docs/results.md, the lecture's experiments.

What it shows: PCA (`jnp.linalg.eigh`) and a linear autoencoder (configs/linear_ae.py: one
affine layer each way, squared error, Adam with a cosine learning rate) with the same
number of latents, trained on the same images:
- the principal angles between the AE decoder's column space (the rows of its ``[latents,
  784]`` kernel) and the PCA subspace are near 0 degrees: the same subspace;
- their test reconstruction errors are the same (up to the AE's optimisation);
- but the AE's basis is neither orthonormal (Gram matrix far from I, condition number > 1)
  nor the PCA basis (each AE basis vector has a |cosine| well below 1 with its best-matching
  principal component; its code variances are not ordered).
Figures: ``pca_vs_linear_ae_bases.png`` (PCA components and AE decoder rows as images) and
``pca_vs_linear_ae_overlap.png`` (|cosine| between every AE basis vector and every component).

Defaults: 10 latents (Fashion-MNIST's 10th/11th covariance eigenvalues differ by 32%, so the
10-dimensional principal subspace is well separated; with 20 they differ by 5% and the
last angles converge slowly). On ``--dataset=digits`` (1,500 8x8 images) the AE trains for
1000 epochs (11 steps each) by default (about 20 s).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from absl import flags
from matplotlib.figure import Figure

from configs import linear_ae
from configs import pca as pca_config
from experiments import cli, common
from vae_jax.data import datasets

NAME = "pca_vs_linear_ae"
LEARNING_RATE = flags.DEFINE_float("learning_rate", 3e-3, "Peak learning rate of the linear AE (cosine schedule).")
DEFAULT_EPOCHS = {"digits": 1000}  # other datasets: 20


def basis_stats(basis: np.ndarray) -> dict[str, float]:
    """How far the rows of ``basis [e, d]`` are from orthonormal.

    ``gram_deviation``: ||B B^T - I||_F / ||I||_F (0 for orthonormal rows);
    ``normalised_gram_deviation``: the same with each row scaled to unit length (only the
    angles between the rows count); ``gram_condition``: condition number of B B^T (1 for
    orthogonal rows of equal length); ``row_norm_min`` / ``row_norm_max``.
    """
    basis = np.asarray(basis, np.float64)
    e = len(basis)
    norms = np.linalg.norm(basis, axis=1)
    unit = basis / norms[:, None]
    deviation = lambda b: float(np.linalg.norm(b @ b.T - np.eye(e)) / math.sqrt(e))
    return {
        "gram_deviation": deviation(basis),
        "normalised_gram_deviation": deviation(unit),
        "gram_condition": float(np.linalg.cond(basis @ basis.T)),
        "row_norm_min": float(norms.min()),
        "row_norm_max": float(norms.max()),
    }


def abs_cosines(basis: np.ndarray, components: np.ndarray) -> np.ndarray:
    """``[e, e]`` |cosine| between each row of ``basis`` and each (unit) PCA component."""
    basis = np.asarray(basis, np.float64)
    unit = basis / np.linalg.norm(basis, axis=1, keepdims=True)
    return np.abs(unit @ np.asarray(components, np.float64).T)


def claims(numbers) -> dict[str, bool]:
    """The lecture's claim, from this experiment's numbers: ``same_subspace_and_error`` (every
    principal angle below 5 degrees and test errors within 1%) and ``different_basis`` (the AE's
    basis vectors' mean best |cosine| with a principal component below 0.9, and their Gram matrix,
    rows normalised, more than 0.1 from I)."""
    return {
        "same_subspace_and_error": numbers["max_angle_degrees"] < 5
        and abs(numbers["relative_error_difference"]) < 0.01,
        "different_basis": numbers["mean_best_abs_cosine"] < 0.9
        and numbers["ae_basis"]["normalised_gram_deviation"] > 0.1,
    }


def _image_row(axes, vectors, shape, label):
    for ax, vector in zip(axes, vectors):
        limit = np.abs(vector).max() or 1.0
        ax.imshow(vector.reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)


def save_bases_figure(path, components, basis, shape, dataset):
    e = len(components)
    fig = Figure(figsize=(1.2 * e + 1.5, 3.0))
    axes = fig.subplots(2, e, squeeze=False)
    _image_row(axes[0], components, shape, "PCA\ncomponents")
    _image_row(axes[1], basis, shape, "linear AE\ndecoder rows")
    for i in range(e):
        axes[0, i].set_title(str(i + 1), fontsize=8)
    fig.suptitle(
        f"{dataset}: the same {e}-dimensional subspace, two bases (red > 0 > blue, each image scaled to its own range)",
        fontsize=9,
    )
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_overlap_figure(path, cosines, angles):
    e = len(cosines)
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    image = ax.imshow(cosines, cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("PCA component")
    ax.set_ylabel("linear AE basis vector (decoder row)")
    ax.set_xticks(range(e), [str(i + 1) for i in range(e)], fontsize=7)
    ax.set_yticks(range(e), [str(i + 1) for i in range(e)], fontsize=7)
    ax.set_title("|cosine| between the two bases")
    fig.colorbar(image, ax=ax, fraction=0.046)
    bx.bar(np.arange(1, e + 1), angles, color="tab:blue")
    bx.set_xlabel("principal angle index")
    bx.set_ylabel("degrees")
    bx.set_title(f"principal angles between the subspaces (max {angles.max():.2f} deg)")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")


def main(argv):
    del argv
    cli.check_flags(
        **common.flag_rules("workdir", "dataset", "data_dir", "latents", "epochs"), learning_rate=cli.positive()
    )
    dataset = common.flag_or(common.DATASET, "fashion_mnist")
    latents = common.flag_or(common.LATENTS, 10)
    epochs = common.flag_or(common.EPOCHS, DEFAULT_EPOCHS.get(dataset, 20))
    learning_rate = LEARNING_RATE.value

    pca_cfg = pca_config.get_config()
    common.set_data(pca_cfg, dataset)
    pca_cfg.model.latents = latents
    _, _, fitted, pca_metrics = common.train_and_restore(pca_cfg, common.workdir(f"{NAME}/{dataset}_pca_z{latents}"))

    ae_cfg = linear_ae.get_config()
    common.set_data(ae_cfg, dataset)
    ae_cfg.model.latents = latents
    ae_cfg.num_epochs = epochs
    ae_cfg.optimizer.learning_rate = learning_rate
    ae_cfg.optimizer.schedule = "cosine"
    ae_cfg.checkpoint_every_epochs = max(1, epochs // 4)
    run = f"{NAME}/{dataset}_linear_ae_z{latents}_e{epochs}_lr{learning_rate:g}"
    fns, _, params, ae_metrics = common.train_and_restore(ae_cfg, common.workdir(run))

    components = np.asarray(fitted.components, np.float64)  # [e, d], orthonormal rows
    basis = np.asarray(params["params"]["decoder"]["out"]["kernel"], np.float64)  # [e, d]: x_hat = z @ basis + b
    angles = np.degrees(scipy.linalg.subspace_angles(basis.T, components.T))[::-1]  # ascending
    cosines = abs_cosines(basis, components)
    best = cosines.max(axis=1)

    test_images = datasets.load_dataset(dataset, data_dir=common.DATA_DIR.value or None)["test"].images
    ae_codes = np.asarray(fns.encode(params, test_images), np.float64)
    ae_code_variance = ae_codes.var(axis=0)
    pca_code_variance = np.asarray(fitted.explained_variance, np.float64)

    pca_error, ae_error = pca_metrics["squared_error"], ae_metrics["squared_error"]
    numbers = {
        "dataset": dataset,
        "latents": latents,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "principal_angles_degrees": angles,
        "max_angle_degrees": float(angles.max()),
        "mean_angle_degrees": float(angles.mean()),
        "pca_test_squared_error": pca_error,
        "ae_test_squared_error": ae_error,
        "relative_error_difference": (ae_error - pca_error) / pca_error,
        "pca_explained_variance_ratio": float(np.sum(fitted.explained_variance_ratio)),
        "ae_basis": basis_stats(basis),
        "pca_basis": basis_stats(components),
        "best_abs_cosine_per_ae_vector": best,
        "mean_best_abs_cosine": float(best.mean()),
        "min_best_abs_cosine": float(best.min()),
        "ae_code_variance": ae_code_variance,
        "pca_code_variance": pca_code_variance,
        "ae_code_variance_decreasing": bool(np.all(np.diff(ae_code_variance) <= 0)),
    }

    shape = datasets.image_shape(dataset)[:2]
    save_bases_figure(common.output_path(f"{NAME}_bases.png"), components, basis, shape, dataset)
    save_overlap_figure(common.output_path(f"{NAME}_overlap.png"), cosines, angles)

    ae_stats, pca_stats = numbers["ae_basis"], numbers["pca_basis"]
    checks = claims(numbers)
    same, different = checks["same_subspace_and_error"], checks["different_basis"]
    verdict = (
        "Supports the lecture: the same subspace (all principal angles below 5 degrees) and the same "
        "reconstruction error (within 1%), but a basis that is neither orthonormal nor the PCA basis."
        if same and different
        else "Does not fully support the lecture's claim with these settings "
        f"(same subspace and error: {same}; different basis: {different}); train longer "
        "(`--epochs`) or check the learning rate."
    )
    markdown = "\n\n".join(
        [
            f"## PCA vs a linear autoencoder ({dataset}, {latents} latents)",
            f"PCA (`jnp.linalg.eigh` of the covariance) and the linear autoencoder of `configs/linear_ae.py` "
            f"(one affine layer each way, squared error; {epochs} epochs, Adam, cosine learning rate from "
            f"{learning_rate:g}), trained on the {dataset} training split. Errors are squared errors per test image.",
            common.markdown_table(
                ["", "PCA", "linear AE"],
                [
                    ["test squared error per image", f"{pca_error:.4f}", f"{ae_error:.4f}"],
                    [
                        "‖B Bᵀ − I‖_F / ‖I‖_F (rows as they are)",
                        pca_stats["gram_deviation"],
                        ae_stats["gram_deviation"],
                    ],
                    [
                        "same, rows normalised to length 1",
                        pca_stats["normalised_gram_deviation"],
                        ae_stats["normalised_gram_deviation"],
                    ],
                    ["condition number of B Bᵀ", pca_stats["gram_condition"], ae_stats["gram_condition"]],
                    [
                        "basis vector lengths (min - max)",
                        f"{pca_stats['row_norm_min']:.3g} - {pca_stats['row_norm_max']:.3g}",
                        f"{ae_stats['row_norm_min']:.3g} - {ae_stats['row_norm_max']:.3g}",
                    ],
                    [
                        "code variances ordered (decreasing)",
                        "yes",
                        "yes" if numbers["ae_code_variance_decreasing"] else "no",
                    ],
                ],
            ),
            common.markdown_table(
                ["subspace comparison", "value"],
                [
                    ["largest principal angle (degrees)", float(angles.max())],
                    ["mean principal angle (degrees)", float(angles.mean())],
                    ["relative difference of the test errors (AE - PCA) / PCA", numbers["relative_error_difference"]],
                    ["mean over AE basis vectors of the best \\|cos\\| with a PCA component", float(best.mean())],
                    ["smallest such best \\|cos\\|", float(best.min())],
                ],
            ),
            f"{verdict} (PCA explains {numbers['pca_explained_variance_ratio']:.1%} of the training variance.) "
            "B is the matrix whose rows are the basis vectors: the PCA components, or the rows of the AE "
            "decoder's kernel (x_hat = z B + b).",
            f"![PCA components and linear AE decoder rows]({NAME}_bases.png)",
            f"![|cosine| between the bases and the principal angles]({NAME}_overlap.png)",
        ]
    )
    common.write_results(NAME, numbers, markdown)


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
