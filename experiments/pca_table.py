"""The lecture's worked PCA example: ``python -m experiments.pca_table [--workdir=runs/lecture]``.

Five centred 2-D points A..E, one principal component from `jnp.linalg.eigh` of the
covariance: prints the table (initial, encoded, decoded, rounded to 2 decimals as in the
lecture) and draws the points, the principal axis and the projections. Runs in seconds.
"""

import numpy as np
from matplotlib.figure import Figure

from experiments import cli, common
from vae_jax.models import pca

POINTS = {"A": (-0.50, -0.40), "B": (-0.40, -0.10), "C": (0.10, 0.00), "D": (0.30, 0.30), "E": (0.50, 0.20)}


def main(argv):
    del argv
    cli.check_flags(**common.flag_rules("workdir"))
    x = np.array(list(POINTS.values()))
    fitted = pca.fit(x, 1, center=False)  # the lecture's data are already centred
    encoded = np.asarray(pca.encode(fitted, x))
    decoded = np.asarray(pca.decode(fitted, encoded))
    rows = [
        [name, f"({a:.2f}, {b:.2f})", f"{z:.2f}", f"({u:.2f}, {v:.2f})"]
        for name, (a, b), z, (u, v) in zip(POINTS, x, encoded[:, 0], decoded)
    ]
    component = np.asarray(fitted.components[0])

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.axline((0, 0), component, color="tab:blue", label=f"principal axis ({component[0]:.3f}, {component[1]:.3f})")
    for name, point, projection in zip(POINTS, x, decoded):
        ax.plot(*zip(point, projection), color="gray", linestyle=":")
        ax.annotate(name, point, textcoords="offset points", xytext=(4, 4))
    ax.scatter(x[:, 0], x[:, 1], color="black", label="initial")
    ax.scatter(decoded[:, 0], decoded[:, 1], color="tab:red", marker="x", label="decoded (projection)")
    ax.set_aspect("equal")
    ax.set_xlim(-0.7, 0.7)
    ax.set_ylim(-0.7, 0.7)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("PCA of the lecture's 5 points, 1 component")
    fig.savefig(common.output_path("pca_table.png"), dpi=100, bbox_inches="tight")

    numbers = {
        "component": component.tolist(),
        "explained_variance_ratio": float(fitted.explained_variance_ratio[0]),
        "encoded": encoded[:, 0].tolist(),
        "decoded": decoded.tolist(),
    }
    markdown = "\n\n".join(
        [
            "## PCA: the lecture's worked 2-D example",
            common.markdown_table(["point", "initial", "encoded", "decoded"], rows),
            f"Principal component ({component[0]:.4f}, {component[1]:.4f}) (first coordinate positive), explaining "
            f"{numbers['explained_variance_ratio']:.1%} of the variance. The table equals the lecture's at 2 decimals "
            "(checked by `tests/test_pca.py`).",
            "![points, principal axis and projections](pca_table.png)",
        ]
    )
    common.write_results("pca_table", numbers, markdown)


if __name__ == "__main__":
    cli.run(main, log_dir=common.workdir_root)
