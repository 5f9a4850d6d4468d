"""Exit codes of the command-line scripts, run as a user runs them (``python -m experiments.X``).

Success is exit status 0; a user's mistake (a workdir without a run, a sweep file without
``get_sweep()``, ...) is exit status 2 with exactly one ``error: ...`` line on stderr and no
traceback (see `vae_jax.errors`). Each script is started in a fresh process on the CPU, on
inputs small enough to take seconds.
"""

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import assert_user_error, load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("MPLBACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{module}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_success(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


# ----------------------------------------------------------------------------- success


def test_pca_table_then_report(tmp_path):
    result = run_script("pca_table", f"--workdir={tmp_path}")
    assert_success(result)
    for name in ("pca_table.json", "pca_table.md", "pca_table.png"):
        assert os.path.getsize(tmp_path / name) > 0, name
    with open(tmp_path / "pca_table.json") as f:
        numbers = json.load(f)
    assert numbers["component"] == pytest.approx([0.8578, 0.5140], abs=1e-3)  # the lecture's
    assert "| A | (-0.50, -0.40) |" in result.stdout

    result = run_script("report", f"--workdir={tmp_path}")  # one section written, four to come
    assert_success(result)
    assert "1 of 5 sections" in result.stdout
    report = (tmp_path / "REPORT.md").read_text()
    assert (tmp_path / "pca_table.md").read_text().strip() in report
    assert "python -m experiments.likelihood" in report  # a section not run yet, with its command


def test_benchmark_quick(tmp_path):
    # The matmul part: seconds here (--parts=pca takes ~25 s on a loaded 2-core machine).
    output = tmp_path / "b.json"
    assert_success(run_script("benchmark", "--quick", "--parts=matmul", f"--output={output}"))
    with open(output) as f:
        figures = json.load(f)
    assert figures["backend"] == "cpu" and len(figures["devices"]) >= 1
    assert math.isfinite(figures["matmul_gflops"]) and figures["matmul_gflops"] > 0
    assert "fused_epoch" not in figures and "pca_seconds" not in figures  # only the parts asked for


def test_benchmark_of_a_likelihood_model(tmp_path):
    # The 'likelihood' part on the model of configs/vae_binarized_mnist.py (the reference shapes,
    # quick to compile): its FLOPs counted from the step are those counted by hand.
    output = tmp_path / "b.json"
    flags = ("--quick", "--parts=matmul,likelihood", "--likelihood_model=vae_binarized_mnist", f"--output={output}")
    result = run_script("benchmark", *flags)
    assert_success(result)
    with open(output) as f:
        figures = json.load(f)
    assert figures["likelihood_model"] == "configs/vae_binarized_mnist.py"
    assert figures["likelihood_mflops_per_example"] == pytest.approx(3.28)
    assert figures["likelihood_parameters"] == 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784
    for variant in ("trainer", "sgd", "sgd_loss_only", "forward", "matmul_at_peak"):
        assert figures[f"likelihood_{variant}_ms_per_step"] > 0, variant
    # Derived figures agree with the measured ones (their values depend on the machine's load).
    achieved = figures["likelihood_examples_per_s"] * figures["likelihood_mflops_per_example"] / 1e3
    assert figures["likelihood_gflops"] == pytest.approx(achieved)
    assert figures["likelihood_fraction_of_matmul_peak"] == pytest.approx(achieved / figures["matmul_gflops"])
    assert sum(figures["likelihood_flops_share"].values()) == pytest.approx(1.0)
    assert "likelihood_examples_per_s" in result.stdout and "decoder/out" in result.stdout


# ----------------------------------------------------------------------------- user errors


def test_evaluate_a_workdir_without_a_run(tmp_path):
    assert_user_error(run_script("evaluate", f"--workdir={tmp_path}"), "holds no run", str(tmp_path))


def test_sweep_file_without_get_sweep(tmp_path):
    sweep_file = tmp_path / "no_members.py"
    sweep_file.write_text("from configs import vae\n\n\ndef get_config():\n    return vae.get_config()\n")
    workdir = tmp_path / "sweep"
    result = run_script("sweep", f"--config={sweep_file}", f"--workdir={workdir}")
    assert_user_error(result, "get_sweep()", str(sweep_file))
    assert not workdir.exists()  # refused before anything was written


@pytest.fixture(scope="module")
def pca_run(tmp_path_factory):
    """A finished PCA run on digits (fitted, not trained: seconds)."""
    from vae_jax.training import run

    workdir = str(tmp_path_factory.mktemp("cli") / "pca")
    run.train_and_evaluate(load_config("pca"), workdir)
    return workdir


def test_evaluate_a_split_the_dataset_lacks(pca_run):
    result = run_script("evaluate", f"--workdir={pca_run}", "--split=valid", "--num_samples=2")
    assert_user_error(result, "--split=valid", "digits")


def test_evaluate_a_run_that_is_not_a_vae(pca_run):
    result = run_script("evaluate", f"--workdir={pca_run}", "--split=test", "--num_samples=2")
    assert_user_error(result, pca_run)


def test_report_workdir_that_is_a_file(tmp_path):
    (tmp_path / "a_file").write_text("")
    assert_user_error(run_script("report", f"--workdir={tmp_path / 'a_file'}"), str(tmp_path / "a_file"))


def test_benchmark_of_a_likelihood_model_that_does_not_exist(tmp_path):
    result = run_script(
        "benchmark", "--parts=likelihood", "--likelihood_model=bmnist_ladder", f"--output={tmp_path}/b.json"
    )
    assert_user_error(result, "--likelihood_model=bmnist_ladder", "configs/bmnist_ladder.py")
    assert not (tmp_path / "b.json").exists()


def test_benchmark_output_in_a_missing_directory(tmp_path):
    output = tmp_path / "missing" / "b.json"
    assert_user_error(run_script("benchmark", "--quick", "--parts=", f"--output={output}"), str(output))
