"""`experiments.evaluate`: the importance-sampled NLL of a finished run, per split."""

import json
import os

import pytest

from experiments import evaluate
from vae_jax.training import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_nll_of_a_run_is_below_its_negative_elbo(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    results = {k: evaluate.evaluate_run(workdir, num_samples=k, split="valid") for k in (1, 64)}
    for k, result in results.items():
        assert result["split"] == "valid" and result["num_samples"] == k
        with open(os.path.join(workdir, f"nll_valid_k{k}.json")) as f:
            assert json.load(f) == result
    # L_k rises with k: the NLL estimate falls and stays below the ELBO's negative.
    assert results[64]["nll"] < results[1]["nll"]
    assert results[64]["nll"] < results[64]["neg_elbo"]
    assert 0 <= results[1]["active_units"] <= config.model.latents
    test = evaluate.evaluate_run(workdir, num_samples=1, split="test")
    assert test["neg_elbo"] == pytest.approx(final["neg_elbo"], rel=1e-5)
