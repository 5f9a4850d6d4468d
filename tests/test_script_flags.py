"""Each script checks its own flags first (`experiments.cli.check_flags`): a bad value is exit
status 2 and one ``error:`` line on stderr naming the flag and its value, with no traceback, before
any data, run or model is read and before anything is written.

Each case runs ``python -m experiments.<script>`` in a fresh process (seconds: the imports) with
one bad flag among otherwise usable ones; paths that the script would read (a run, a dataset)
do not exist, so an error about them instead of the flag would fail the test, as would a file
written into the workdir.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import assert_user_error

from experiments import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (script, flags, what the error line names). "{tmp}": a new temporary directory; "{missing}": a
# directory that does not exist; "{file}": an existing file.
CASES = [
    ("train", ["--config=configs/vae.py", "--workdir={missing}", "--num_processes=0"], ["--num_processes=0"]),
    ("train", ["--config=configs/vae.py", "--workdir={file}"], ["--workdir=", "not a file"]),
    (
        "sweep",
        ["--config=configs/sweeps/beta.py", "--workdir={missing}", "--num_processes=2", "--process_id=2"],
        ["--process_id=2"],
    ),
    (
        "sweep",
        ["--config=configs/sweeps/beta.py", "--workdir={missing}", "--coordinator_address=no-port"],
        ["--coordinator_address=no-port", "HOST:PORT"],
    ),
    ("evaluate", ["--workdir={missing}", "--num_samples=-5"], ["--num_samples=-5", ">= 1"]),
    ("evaluate", ["--workdir={missing}", "--split=validation"], ["--split=validation", "test, valid"]),
    ("evaluate", ["--workdir={missing}", "--sample_chunk=0"], ["--sample_chunk=0"]),
    ("evaluate", ["--workdir={missing}", "--num_samples=many"], ["--num_samples=many"]),  # absl's type check
    ("export", ["--workdir={missing}", "--output={file}"], ["--output=", "new or empty directory"]),
    ("curve", ["--workdir={tmp},{missing}"], ["--workdir=", "{missing} is not an existing directory"]),
    ("curve", ["--workdir={tmp}", "--minutes=10,ten"], ["--minutes=10,ten", "ten is not a number"]),
    ("curve", ["--workdir={tmp}", "--plot={missing}/curves.png"], ["--plot=", "existing directory"]),
    ("benchmark", ["--parts=matmul,gpu", "--output={tmp}/b.json"], ["--parts=matmul,gpu", "gpu is not one of"]),
    ("benchmark", ["--parts=matmul", "--output={tmp}"], ["--output=", "a file name"]),
    ("pca_table", ["--workdir={file}"], ["--workdir=", "not a file"]),
    ("pca_vs_linear_ae", ["--workdir={missing}", "--learning_rate=0"], ["--learning_rate=0", "> 0"]),
    ("pca_vs_linear_ae", ["--workdir={missing}", "--latents=0"], ["--latents=0"]),
    ("latent_space", ["--workdir={missing}", "--latent_samples=0"], ["--latent_samples=0"]),
    ("latent_space", ["--workdir={missing}", "--dataset=cifar"], ["--dataset=cifar", "tfds:<name>"]),
    ("latent_space", ["--workdir={missing}", "--data_dir={missing}"], ["--data_dir=", "existing directory"]),
    ("regularisation", ["--workdir={missing}", "--variances=0.05,-1"], ["--variances=0.05,-1", "-1 is not"]),
    ("regularisation", ["--workdir={missing}", "--epochs=0"], ["--epochs=0"]),
    ("likelihood", ["--workdir={missing}", "--ks=1,0"], ["--ks=1,0", "0 is not an integer >= 1"]),
    ("likelihood", ["--workdir={missing}", "--nll_images=-1"], ["--nll_images=-1"]),
    ("report", ["--workdir={file}"], ["--workdir=", "not a file"]),
    ("lecture_page", ["--workdir={file}"], ["--workdir=", "not a file"]),
]


def _ids():
    seen: dict[str, int] = {}
    for script, _, _ in CASES:
        seen[script] = seen.get(script, 0) + 1
        yield f"{script}-{seen[script]}"


@pytest.mark.parametrize("script, args, fragments", CASES, ids=list(_ids()))
def test_a_bad_flag_is_one_error_line_before_any_work(tmp_path, script, args, fragments):
    paths = {"tmp": str(tmp_path / "tmp"), "missing": str(tmp_path / "missing"), "file": str(tmp_path / "a_file")}
    os.makedirs(paths["tmp"])
    open(paths["file"], "w").close()
    env = dict(os.environ, JAX_PLATFORMS="cpu", VAE_JAX_DATA_DIR=paths["missing"])
    env.pop("MPLBACKEND", None)
    result = subprocess.run(
        [sys.executable, "-m", f"experiments.{script}", *(arg.format(**paths) for arg in args)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_user_error(result, *(fragment.format(**paths) for fragment in fragments))
    assert not os.path.exists(paths["missing"]) and os.listdir(paths["tmp"]) == [], "written before the check"


def test_rules_of_list_items():
    positive_integers = cli.each(cli.number(1, integer=True), "integers >= 1")
    assert positive_integers.ok(["1", "1000"])
    assert not positive_integers.ok(["1", "2.5"]) and not positive_integers.ok(["0"]) and not positive_integers.ok([])
    non_negative = cli.each(cli.number(0), "numbers >= 0", allow_empty=True)
    assert non_negative.ok([]) and non_negative.ok(["0", "1e-3"])
    assert not non_negative.ok(["-1"]) and not non_negative.ok(["nan"]) and not non_negative.ok(["inf"])
    assert not cli.number(0, above=True).ok("0")


def test_values_are_named_as_typed():
    assert cli.as_given("ks", ["1", "5"]) == "--ks=1,5"
    assert cli.as_given("html", False) == "--nohtml"
    assert cli.as_given("workdir", "my runs") == "--workdir='my runs'"
    assert cli.as_given("num_samples", -5) == "--num_samples=-5"
