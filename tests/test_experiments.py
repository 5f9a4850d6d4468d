"""Tests of the lecture experiments (`experiments/*.py`) on tiny settings, and of the report.

Each experiment's ``main`` runs with digits (or tiny binarised files), 1-2 epochs and few
samples into a temporary ``--workdir``; the tests check that its JSON numbers are finite,
its Markdown and PNG figures exist, that a re-run reuses the trained models, the effects that
show even in such short runs (the KL shrinks as beta or c grows; the NLL falls with k), and that
the reported verdicts are those of each experiment's claim logic (`pca_vs_linear_ae.claims`,
`latent_space.claim_checks`, `regularisation.trend_checks`, `likelihood.falls_with_k`), which
the ``*_of_known_numbers`` tests check on numbers chosen to make each verdict true or false.
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


def markdown(workdir, module) -> str:
    with open(os.path.join(workdir, f"{module.NAME}.md")) as f:
        return f.read()


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


def test_pca_vs_linear_ae_claims_of_known_numbers():
    def claims(max_angle=1.0, error_difference=0.005, best_cosine=0.6, gram_deviation=0.5):
        numbers = {
            "max_angle_degrees": max_angle,
            "relative_error_difference": error_difference,
            "mean_best_abs_cosine": best_cosine,
            "ae_basis": {"normalised_gram_deviation": gram_deviation},
            "pca_basis": {"normalised_gram_deviation": 0.0},
        }
        checks = pca_vs_linear_ae.claims(numbers)
        return checks["same_subspace_and_error"], checks["different_basis"]

    assert claims() == (True, True)
    assert claims(error_difference=-0.005) == (True, True)  # |difference| < 1%, either sign
    assert claims(max_angle=6.0) == (False, True)  # not the same subspace
    assert claims(error_difference=0.02) == (False, True)  # nor the same error
    assert claims(error_difference=-0.02) == (False, True)
    assert claims(best_cosine=0.95) == (True, False)  # the PCA basis itself
    assert claims(gram_deviation=0.05) == (True, False)  # an (almost) orthonormal basis


def test_latent_space_claim_checks_of_known_numbers():
    def checks(ae_empty=0.3, vae_empty=0.05, ae_conf=0.8, vae_conf=0.85, ae_jump=0.3, vae_jump=0.1):
        # Each model's other sampler gets numbers that would reverse every verdict: the checks must
        # read the AE's fitted Gaussian and the VAE's N(0, I).
        def model(natural, other, empty, conf, jump):
            decoy = {"empty_fraction": 1 - empty, "confidence_ratio": 2 - conf}
            return {
                "completeness": {natural: {"empty_fraction": empty, "confidence_ratio": conf}, other: decoy},
                "continuity": {"max_jump": jump, "mean_ratio_normalised": 1 / jump},
            }

        results = {
            "AE": model("fitted_gaussian", "standard_normal", ae_empty, ae_conf, ae_jump),
            "VAE": model("standard_normal", "fitted_gaussian", vae_empty, vae_conf, vae_jump),
        }
        return list(latent_space.claim_checks(results).values())

    assert checks() == [True, True, True]
    assert checks(ae_empty=0.05, vae_empty=0.3) == [False, True, True]
    assert checks(ae_empty=0.1, vae_empty=0.1) == [False, True, True]  # "more often": strictly
    assert checks(ae_conf=0.8, vae_conf=0.795) == [True, True, True]  # at most 0.01 lower
    assert checks(ae_conf=0.8, vae_conf=0.78) == [True, False, True]
    assert checks(ae_jump=0.1, vae_jump=0.3) == [True, True, False]
    assert checks(ae_jump=0.2, vae_jump=0.2) == [True, True, False]


def test_regularisation_trend_checks_of_known_rows():
    beta_rows = [
        dict(squared_error=1.0, kl=9.0, active_units=5, posterior_std=0.1, mean_spread=2.0),
        dict(squared_error=2.0, kl=5.0, active_units=5, posterior_std=0.5, mean_spread=1.0),  # ties count
        dict(squared_error=3.0, kl=1.0, active_units=3, posterior_std=0.9, mean_spread=0.5),
    ]
    c_rows = [dict(squared_error=1.5, kl=7.0, active_units=4), dict(squared_error=2.5, kl=3.0, active_units=2)]
    assert all(regularisation.trend_checks(beta_rows, c_rows).values())
    trends = {
        ("beta", "squared_error"): "beta sweep: squared error grows with beta",
        ("beta", "kl"): "beta sweep: KL shrinks with beta",
        ("beta", "active_units"): "beta sweep: active units do not grow with beta",
        ("beta", "posterior_std"): "beta sweep: posterior std grows with beta (less point-like)",
        ("beta", "mean_spread"): "beta sweep: posterior means move closer together",
        ("c", "squared_error"): "c sweep: squared error grows with c",
        ("c", "kl"): "c sweep: KL shrinks with c",
        ("c", "active_units"): "c sweep: active units do not grow with c",
    }
    for (sweep, key), trend in trends.items():
        # One value out of line (the last row's moved past the first's) breaks that trend only.
        rows = [dict(r) for r in (beta_rows if sweep == "beta" else c_rows)]
        rows[-1][key] = rows[0][key] - (rows[-1][key] - rows[0][key])
        checks = regularisation.trend_checks(*((rows, c_rows) if sweep == "beta" else (beta_rows, rows)))
        assert [t for t, ok in checks.items() if not ok] == [trend], (sweep, key)


def test_likelihood_falls_with_k_of_known_numbers():
    assert likelihood.falls_with_k([90.0, 89.0, 88.5])
    assert likelihood.falls_with_k([90.0, 90.0, 88.0])  # a tie is not a rise
    assert likelihood.falls_with_k([90.0, 90.0 + 5e-7])  # nor is float noise
    assert not likelihood.falls_with_k([90.0, 89.0, 89.1])
    assert not likelihood.falls_with_k([90.0, 90.001])


def test_pca_vs_linear_ae_and_rerun_reuses_models(tmp_path):
    numbers = run_experiment(pca_vs_linear_ae, tmp_path, dataset="digits", epochs=2, latents=4)
    assert len(numbers["principal_angles_degrees"]) == 4
    assert 0 <= numbers["mean_angle_degrees"] <= numbers["max_angle_degrees"] <= 90
    assert numbers["pca_basis"]["gram_deviation"] < 1e-4
    assert numbers["pca_test_squared_error"] > 0 and numbers["ae_test_squared_error"] > 0
    claims = pca_vs_linear_ae.claims(numbers)
    assert ("Supports the lecture" in markdown(tmp_path, pca_vs_linear_ae)) == all(claims.values())
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
    # The reported verdicts are those of `claim_checks` (tested on known numbers above) on the
    # reported numbers, and the Markdown states them.
    checks = numbers["claim_checks"]
    assert checks == latent_space.claim_checks(numbers)
    text = markdown(tmp_path, latent_space)
    refuted = [claim for claim, ok in checks.items() if not ok]
    if refuted:
        assert "Not supported: " + "; ".join(refuted) + "." in text
    else:
        assert "All three checks support the lecture's claim" in text
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
    # Even after one epoch, weighting the KL more (beta 0 -> 1, or c 0.05 -> 0.2) makes it smaller
    # (measured: 4.63 -> 4.14 and 4.14 -> 2.44 nats).
    beta0, beta1 = numbers["beta_sweep"]
    assert beta0["kl"] > beta1["kl"]
    assert numbers["c_sweep"][0]["kl"] > numbers["c_sweep"][1]["kl"]
    checks = numbers["checks"]
    assert checks == regularisation.trend_checks(numbers["beta_sweep"], numbers["c_sweep"])
    assert checks["beta sweep: KL shrinks with beta"] and checks["c sweep: KL shrinks with c"]
    failed = [trend for trend, ok in checks.items() if not ok]
    text = markdown(tmp_path, regularisation)
    if failed:
        assert "Not every trend holds in these short runs: " + "; ".join(failed) + "." in text
    else:
        assert "Every trend the lecture predicts holds" in text
    assert_pngs(tmp_path, ["regularisation_sweep.png"])


def test_likelihood(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_tiny_binarized_mnist(str(data_dir), sizes=(("train", 256), ("valid", 16), ("test", 24)))
    out = tmp_path / "out"
    numbers = run_experiment(likelihood, out, data_dir=str(data_dir), epochs=1, latents=2, ks=["3", "1"])
    assert [r["k"] for r in numbers["nll"]] == [1, 3]
    assert numbers["test_images"] == 24 and 0 <= numbers["active_units"] <= 2
    nll_1, nll_3 = [r["nll"] for r in numbers["nll"]]
    # The estimate falls with k: strictly here, as the samples are nested (those of k = 1 are among
    # those of k = 3), so the difference is far less noisy than the standard errors over images
    # (measured: 531.8 and 528.5 nats, standard errors 2.2); the Markdown says so.
    assert nll_3 < nll_1
    assert "The estimate falls with k as it should" in markdown(out, likelihood)
    # k = 1 estimates the negative ELBO (one sample per image, on the same images): within three
    # standard errors over the images (~7 nats; measured 531.8 and 530.0), not 20%.
    assert abs(nll_1 - numbers["test_neg_elbo"]) < 3 * numbers["nll"][0]["standard_error"]


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
