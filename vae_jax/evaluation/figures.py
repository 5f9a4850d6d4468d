"""PNG figures of a trained model: reconstructions, samples, latent scatter, manifold grid.

Matplotlib's object-oriented API without pyplot: each function makes its own `Figure`, which
``savefig`` renders with the Agg canvas, so no display is needed and matplotlib's global backend
is left as the caller set it. Functions take numpy arrays that the caller computed, so they know
nothing about models.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Tiles ``[n, H, W, 1]`` (or ``[n, H, W]``) images into one ``[rows*H, columns*W]`` array;
    colour images ``[n, H, W, 3]`` into one ``[rows*H, columns*W, 3]`` array."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n, height, width = images.shape[:3]
    rows = -(-n // columns)
    canvas = np.ones((rows * height, columns * width, *images.shape[3:]), images.dtype)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    return canvas


def _save_image(path: str, canvas: np.ndarray, title: str) -> None:
    fig = Figure(figsize=(max(3.0, canvas.shape[1] / 40), max(3.0, canvas.shape[0] / 40) + 0.4))
    ax = fig.subplots()
    ax.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_reconstructions(
    path: str,
    originals: np.ndarray,
    reconstructions: np.ndarray,
    title: str = "test images (top) and reconstructions (bottom)",
) -> None:
    """Originals (top row) above their reconstructions (bottom row)."""
    both = np.concatenate([originals, reconstructions])
    _save_image(path, tile(both, columns=len(originals)), title)


def save_samples(path: str, samples: np.ndarray, title: str) -> None:
    """A square-ish grid of generated images."""
    _save_image(path, tile(samples, columns=int(np.ceil(np.sqrt(len(samples))))), title)


def save_manifold(path: str, images: np.ndarray, grid_size: int, title: str) -> None:
    """Decodings of a ``grid_size x grid_size`` grid over a 2-D latent plane (row-major)."""
    _save_image(path, tile(images, columns=grid_size), title)


def save_latent_scatter(path: str, codes: np.ndarray, labels: np.ndarray | None, title: str) -> None:
    """Scatter of 2-D codes, coloured by label when labels exist."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=2, alpha=0.6)
    else:
        points = ax.scatter(codes[:, 0], codes[:, 1], s=2, c=labels, cmap="tab10", alpha=0.6)
        fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def save_curves(path: str, curves: dict, ylabel: str, title: str) -> None:
    """Validation curves against training minutes: ``curves[label] = (minutes, values, best)``,
    each run's epochs as points and its best so far as a line, in one colour per run."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    finite = []
    for i, (label, (minutes, values, best)) in enumerate(curves.items()):
        ax.plot(minutes, values, ".", color=f"C{i}", alpha=0.35, markersize=4)
        ax.plot(minutes, best, "-", color=f"C{i}", label=label)
        finite.extend(v for v in values if np.isfinite(v))
    if len(finite) > 4:  # the first epochs are far above the rest: show the part that matters
        ax.set_ylim(float(np.min(finite)) - 0.5, float(np.percentile(finite, 85)) + 0.5)
    ax.set_xlabel("training minutes")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
