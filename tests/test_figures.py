"""`vae_jax.evaluation.figures` and the lecture scripts draw with matplotlib's object-oriented API: importing
them leaves matplotlib's global backend as the caller set it, and the figures are still PNGs."""

import ast
import glob
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from vae_jax.evaluation import figures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (
    "vae_jax.evaluation.figures",
    "vae_jax.training.programs",
    "experiments.common",
    "experiments.pca_table",
    "experiments.pca_vs_linear_ae",
    "experiments.latent_space",
    "experiments.regularisation",
    "experiments.likelihood",
    "experiments.report",
    "experiments.evaluate",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Run in a fresh process: the backend is process-global, and pytest's own process may have set it.
BACKEND_CHECK = """
import importlib, os, sys
import matplotlib
matplotlib.use("svg")
for name in sys.argv[2:]:
    importlib.import_module(name)
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
import numpy as np
from vae_jax.evaluation import figures
path = os.path.join(sys.argv[1], "reconstructions.png")
figures.save_reconstructions(path, np.zeros((3, 8, 8, 1)), np.ones((3, 8, 8, 1)))
with open(path, "rb") as f:
    assert f.read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
print("ok")
"""


def assert_png(path):
    assert os.path.getsize(path) > 500, path
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, path


def test_importing_figures_and_lecture_scripts_keeps_the_backend(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", BACKEND_CHECK, str(tmp_path), *MODULES],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


@pytest.mark.parametrize("directory", ["vae_jax", "experiments"])
def test_no_module_switches_the_backend_or_uses_pyplot(directory):
    for path in glob.glob(os.path.join(REPO, directory, "**", "*.py"), recursive=True):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("matplotlib.pyplot") for alias in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert node.module != "matplotlib.pyplot", path
                assert not (node.module == "matplotlib" and any(a.name == "pyplot" for a in node.names)), path
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use":
                assert ast.unparse(node.func.value) != "matplotlib", f"{path}: matplotlib.use"


def test_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(6, 8, 8, 1)).astype(np.float32)
    figures.save_reconstructions(str(tmp_path / "reconstructions.png"), images[:3], images[3:])
    figures.save_samples(str(tmp_path / "samples.png"), images, "samples")
    figures.save_manifold(str(tmp_path / "manifold.png"), np.tile(images[:1], (9, 1, 1, 1)), 3, "manifold")
    codes = rng.normal(size=(50, 2))
    figures.save_latent_scatter(str(tmp_path / "scatter.png"), codes, rng.integers(0, 10, 50), "labelled")
    figures.save_latent_scatter(str(tmp_path / "scatter_unlabelled.png"), codes, None, "unlabelled")
    for name in ("reconstructions", "samples", "manifold", "scatter", "scatter_unlabelled"):
        assert_png(tmp_path / f"{name}.png")


def longest_run(row: np.ndarray) -> int:
    """The length of the longest run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], row.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((stops - starts).max()) if len(starts) else 0


def read_canvas(path, height: int, width: int) -> np.ndarray:
    """The grey levels a figure PNG shows for a ``height x width`` canvas with no white pixel:
    the one solid block of non-white pixels (title and margins are white or thin text), sampled
    at the centre of each canvas pixel."""
    png = matplotlib.image.imread(str(path))
    assert png.ndim == 3 and png.shape[2] in (3, 4), png.shape
    grey = png[..., :3].mean(axis=-1)
    np.testing.assert_allclose(png[..., 0], png[..., 2], atol=1e-6)  # a grey colormap
    inside = grey < 0.98
    runs = np.array([longest_run(row) for row in inside])
    rows = np.flatnonzero(runs >= 0.9 * runs.max())
    columns = np.flatnonzero(inside[rows].all(axis=0))
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    assert len(rows) == bottom - top and len(columns) == right - left  # one solid block
    # Square canvas pixels (imshow's equal aspect), each several PNG pixels wide.
    assert (right - left) / width == pytest.approx((bottom - top) / height, rel=0.03)
    assert (right - left) / width >= 4
    ys = (top + (np.arange(height) + 0.5) * (bottom - top) / height).astype(int)
    xs = (left + (np.arange(width) + 0.5) * (right - left) / width).astype(int)
    return grey[np.ix_(ys, xs)]


def test_reconstructions_show_the_originals_above_their_reconstructions(tmp_path):
    rng = np.random.default_rng(0)
    originals = np.empty((3, 8, 8, 1), np.float32)
    originals[0] = 0.9  # bright
    originals[1] = 0.05  # dark
    originals[2] = np.linspace(0.1, 0.8, 8)[None, :, None]  # brighter to the right
    originals[2, :2] = 0.5  # and a band at the top: orientation
    reconstructions = rng.uniform(0.05, 0.9, size=(3, 8, 8, 1)).astype(np.float32)
    path = tmp_path / "reconstructions.png"
    figures.save_reconstructions(str(path), originals, reconstructions)
    shown = read_canvas(path, 16, 24)
    for column in range(3):
        cell = np.s_[:, 8 * column : 8 * (column + 1)]
        np.testing.assert_allclose(shown[:8][cell], originals[column, ..., 0], atol=0.01)  # top row
        np.testing.assert_allclose(shown[8:][cell], reconstructions[column, ..., 0], atol=0.01)  # bottom row
    assert shown[:8, :8].min() > 0.85 and shown[:8, 8:16].max() < 0.1


def test_manifold_shows_each_decoding_in_its_grid_cell(tmp_path):
    levels = np.linspace(0.05, 0.9, 9).astype(np.float32)
    np.random.default_rng(1).shuffle(levels)
    images = levels[:, None, None, None] * np.ones((9, 6, 6, 1), np.float32)
    path = tmp_path / "manifold.png"
    figures.save_manifold(str(path), images, 3, "manifold")
    shown = read_canvas(path, 18, 18)
    cells = shown.reshape(3, 6, 3, 6).transpose(0, 2, 1, 3).reshape(9, 36)  # row-major cells
    np.testing.assert_allclose(cells, np.repeat(levels[:, None], 36, axis=1), atol=0.01)


def test_samples_fill_a_square_grid(tmp_path):
    samples = np.random.default_rng(2).uniform(0.05, 0.9, size=(16, 5, 5, 1)).astype(np.float32)
    path = tmp_path / "samples.png"
    figures.save_samples(str(path), samples, "samples")
    shown = read_canvas(path, 20, 20)  # 4 x 4 images of 5 x 5
    expected = samples[..., 0].reshape(4, 4, 5, 5).transpose(0, 2, 1, 3).reshape(20, 20)
    np.testing.assert_allclose(shown, expected, atol=0.01)


def test_tile():
    images = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2, 1)
    canvas = figures.tile(images, columns=2)
    assert canvas.shape == (4, 4)
    np.testing.assert_array_equal(canvas[:2, 2:], images[1, :, :, 0])
    np.testing.assert_array_equal(canvas[2:, 2:], np.ones((2, 2)))  # the empty cell is white
