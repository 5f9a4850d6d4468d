"""PNG figures of a trained model: reconstructions, samples, latent scatter, manifold grid.

Plain matplotlib (Agg backend, no display needed). Functions take numpy arrays that the
caller computed, so they know nothing about models.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Tiles ``[n, H, W, 1]`` (or ``[n, H, W]``) images into one ``[rows*H, columns*W]`` array."""
    images = np.asarray(images).reshape(images.shape[0], images.shape[1], images.shape[2])
    n, height, width = images.shape
    rows = -(-n // columns)
    canvas = np.ones((rows * height, columns * width), images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    return canvas


def _save_image(path: str, canvas: np.ndarray, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(3.0, canvas.shape[1] / 40), max(3.0, canvas.shape[0] / 40) + 0.4))
    ax.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def save_reconstructions(path: str, originals: np.ndarray, reconstructions: np.ndarray) -> None:
    """Originals (top row) above their reconstructions (bottom row)."""
    both = np.concatenate([originals, reconstructions])
    _save_image(path, tile(both, columns=len(originals)), "test images (top) and reconstructions (bottom)")


def save_samples(path: str, samples: np.ndarray, title: str) -> None:
    """A square-ish grid of generated images."""
    _save_image(path, tile(samples, columns=int(np.ceil(np.sqrt(len(samples))))), title)


def save_manifold(path: str, images: np.ndarray, grid_size: int, title: str) -> None:
    """Decodings of a ``grid_size x grid_size`` grid over a 2-D latent plane (row-major)."""
    _save_image(path, tile(images, columns=grid_size), title)


def save_latent_scatter(path: str, codes: np.ndarray, labels: np.ndarray | None, title: str) -> None:
    """Scatter of 2-D codes, coloured by label when labels exist."""
    fig, ax = plt.subplots(figsize=(6, 5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=2, alpha=0.6)
    else:
        points = ax.scatter(codes[:, 0], codes[:, 1], s=2, c=labels, cmap="tab10", alpha=0.6)
        fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
