"""`vae_jax.figures` and the lecture scripts draw with matplotlib's object-oriented API: importing
them leaves matplotlib's global backend as the caller set it, and the figures are still PNGs."""

import ast
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from vae_jax import figures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (
    "vae_jax.figures",
    "vae_jax.train",
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
from vae_jax import figures
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
    for path in glob.glob(os.path.join(REPO, directory, "*.py")):
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


def test_tile():
    images = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2, 1)
    canvas = figures.tile(images, columns=2)
    assert canvas.shape == (4, 4)
    np.testing.assert_array_equal(canvas[:2, 2:], images[1, :, :, 0])
    np.testing.assert_array_equal(canvas[2:, 2:], np.ones((2, 2)))  # the empty cell is white
