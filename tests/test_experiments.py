"""Smoke tests of the lecture experiments (`experiments/*.py`) on tiny settings, and of the report.

Each experiment's ``main`` runs with digits (or tiny binarised files), 1-2 epochs and few
samples into a temporary ``--workdir``; the tests check that its JSON numbers are finite,
its Markdown and PNG figures exist, and that a re-run reuses the trained models.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from conftest import write_tiny_binarized_mnist
from experiments import common, latent_space, likelihood, pca_vs_linear_ae, regularisation, report

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LECTURE = [
    "experiments.common",
    "experiments.pca_table",
    "experiments.pca_vs_linear_ae",
    "experiments.latent_space",
    "experiments.regularisation",
    "experiments.likelihood",
    "experiments.report",
]

# Imports argv[1:] in order (as one test process may), then checks the lecture scripts' --workdir.
WORKDIR_CHECK = """
import importlib, os, sys
from absl import flags
for name in sys.argv[1:]:
    importlib.import_module(name)
from experiments import common
flags.FLAGS.mark_as_parsed()  # the defaults (experiments.train's required flags are not given here)
assert common.workdir_root() == "runs/lecture", common.workdir_root()
flags.FLAGS.workdir = "given"
assert common.output_path("x.md") == os.path.join("given", "x.md")
assert common.workdir("run") == os.path.join("given", "workdirs", "run")
print("ok")
"""


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS(["test"])  # the defaults; each test overrides what it needs with flagsaver


def run_experiment(module, workdir, **overrides) -> dict:
    """Runs ``module.main`` with ``--workdir=workdir`` and ``overrides``; returns its JSON numbers."""
    with flagsaver.flagsaver(workdir=str(workdir), **overrides):
        module.main([])
    with open(os.path.join(workdir, f"{module.NAME}.json")) as f:
        numbers = json.load(f)
    assert common.all_finite(numbers), numbers
    with open(os.path.join(workdir, f"{module.NAME}.md")) as f:
        assert f.read().startswith("## ")
    return numbers


def assert_pngs(workdir, names):
    for name in names:
        path = os.path.join(workdir, name)
        assert os.path.getsize(path) > 1000, path


def train_epochs(workdir, run):
    with open(os.path.join(workdir, "workdirs", run, "metrics.jsonl")) as f:
        return [json.loads(line)["epoch"] for line in f if '"train"' in line]


def test_basis_stats_of_known_bases():
    orthonormal = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 3)))[0].T
    stats = pca_vs_linear_ae.basis_stats(orthonormal)
    assert stats["gram_deviation"] < 1e-6 and abs(stats["gram_condition"] - 1) < 1e-6
    skewed = np.array([[1.0, 0.0], [1.0, 1.0]])  # rows of length 1 and sqrt(2) at 45 degrees
    stats = pca_vs_linear_ae.basis_stats(skewed)
    assert stats["normalised_gram_deviation"] == pytest.approx(np.sqrt(2 * 0.5) / np.sqrt(2))
    assert pca_vs_linear_ae.abs_cosines(skewed, np.eye(2)).max(axis=1) == pytest.approx([1.0, np.sqrt(0.5)])


def test_pca_vs_linear_ae_and_rerun_reuses_models(tmp_path):
    numbers = run_experiment(pca_vs_linear_ae, tmp_path, dataset="digits", epochs=2, latents=4)
    assert len(numbers["principal_angles_degrees"]) == 4
    assert 0 <= numbers["mean_angle_degrees"] <= numbers["max_angle_degrees"] <= 90
    assert numbers["pca_basis"]["gram_deviation"] < 1e-4
    assert numbers["pca_test_squared_error"] > 0 and numbers["ae_test_squared_error"] > 0
    assert_pngs(tmp_path, ["pca_vs_linear_ae_bases.png", "pca_vs_linear_ae_overlap.png"])
    run = "pca_vs_linear_ae/digits_linear_ae_z4_e2_lr0.003"
    assert train_epochs(tmp_path, run) == [1, 2]
    again = run_experiment(pca_vs_linear_ae, tmp_path, dataset="digits", epochs=2, latents=4)
    assert train_epochs(tmp_path, run) == [1, 2]  # reused, not trained again
    assert again["ae_test_squared_error"] == numbers["ae_test_squared_error"]


def test_latent_space(tmp_path):
    numbers = run_experiment(latent_space, tmp_path, dataset="digits", epochs=1, latent_samples=100, latent_pairs=8)
    for model in ("AE", "VAE"):
        assert numbers[model]["continuity"]["mean_ratio_normalised"] > 0
        for dist in ("standard_normal", "fitted_gaussian"):
            assert 0 <= numbers[model]["completeness"][dist]["empty_fraction"] <= 1
    assert set(numbers["claim_checks"].values()) <= {True, False}
    assert_pngs(tmp_path, ["latent_space_scatter.png", "latent_space_grid.png", "latent_space_samples.png"])


def test_regularisation(tmp_path):
    numbers = run_experiment(
        regularisation,
        tmp_path,
        dataset="digits",
        epochs=1,
        latents=3,
        betas=["0", "1"],
        variances=["0.05", "0.2"],
        reg_samples=50,
    )
    assert [r["beta"] for r in numbers["beta_sweep"]] == [0, 1]
    assert [r["c"] for r in numbers["c_sweep"]] == [0.05, 0.2]
    assert numbers["beta_sweep"][1] == numbers["c_sweep"][0]  # the shared run beta = 1, c = 0.05
    for row in numbers["beta_sweep"] + numbers["c_sweep"]:
        assert 0 <= row["active_units"] <= 3 and row["kl"] >= 0 and 0 <= row["empty_fraction"] <= 1
    assert_pngs(tmp_path, ["regularisation_sweep.png"])


def test_likelihood(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_tiny_binarized_mnist(str(data_dir), sizes=(("train", 256), ("valid", 16), ("test", 24)))
    numbers = run_experiment(likelihood, tmp_path / "out", data_dir=str(data_dir), epochs=1, latents=2, ks=["3", "1"])
    assert [r["k"] for r in numbers["nll"]] == [1, 3]
    assert numbers["test_images"] == 24 and 0 <= numbers["active_units"] <= 2
    # k = 1 is an estimate of the negative ELBO, on the same images.
    assert numbers["nll"][0]["nll"] == pytest.approx(numbers["test_neg_elbo"], rel=0.2)


def test_report_joins_sections_in_lecture_order_and_lists_missing_ones(tmp_path):
    for name in ("likelihood", "pca_table", "regularisation"):
        (tmp_path / f"{name}.md").write_text(f"## section {name}\n")
    with flagsaver.flagsaver(workdir=str(tmp_path)):
        report.main([])
    text = (tmp_path / "REPORT.md").read_text()
    assert text.startswith("# ")
    positions = [text.index(f"## section {name}") for name in ("pca_table", "regularisation", "likelihood")]
    assert positions == sorted(positions)
    for name in ("pca_vs_linear_ae", "latent_space"):
        assert f"not run yet: `python -m experiments.{name}`" in text
    assert "not run yet: `python -m experiments.regularisation" not in text


@pytest.mark.parametrize(
    "modules",
    [
        LECTURE,
        ["experiments.train", *LECTURE],
        [*LECTURE, "experiments.train"],
        ["experiments.evaluate", *LECTURE],
        [*LECTURE, "experiments.evaluate"],
    ],
    ids=["lecture", "train-first", "train-last", "evaluate-first", "evaluate-last"],
)
def test_workdir_flag_is_one_definition_shared_with_train_and_evaluate(tmp_path, modules):
    """The lecture scripts' --workdir and that of experiments.train/evaluate import into one process
    (no DuplicateFlagError) in either order, and the lecture default stays runs/lecture."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", WORKDIR_CHECK, *modules],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
