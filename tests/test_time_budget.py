"""A training-time budget (``config.max_training_minutes``): the run stops at the end of the epoch
that uses it up, counted from metrics.jsonl's rates (so a resumed run counts as one that never
stopped), and is then complete: evaluated once, not trained again."""

import json
import os

import pytest

from vae_jax import config as config_lib
from vae_jax.errors import ConfigError
from vae_jax.training import curve, run, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_training_minutes_sum_each_epochs_steps_over_its_rate():
    records = [
        {"split": "train", "epoch": 1, "step": 10, "examples_per_second": 100.0},
        {"split": "valid", "epoch": 1, "step": 10, "neg_elbo": 5.0},
        {"split": "train", "epoch": 2, "step": 20, "examples_per_second": 50.0},
        {"split": "train", "epoch": 3, "step": 30, "examples_per_second": 200.0},
    ]
    # batch 60: epoch 1 takes 10 * 60 / 100 s = 6 s, epoch 2 12 s, epoch 3 3 s.
    assert curve.training_minutes(records, 60) == pytest.approx(21 / 60)
    assert curve.training_minutes(records, 60, last_step=20) == pytest.approx(18 / 60)
    assert curve.training_minutes(records, 60, last_step=5) == 0.0
    assert [p.minutes for p in curve.validation_curve(records, 60)] == [pytest.approx(0.1)]


def test_a_run_stops_when_its_budget_is_used_and_is_then_complete(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    config.num_epochs, config.model_selection = 20, "valid"
    workdir = str(tmp_path / "run")
    run.train_and_evaluate(config.copy_and_resolve_references(), str(tmp_path / "probe"))  # compiles, warms up
    probe = curve.read_records(str(tmp_path / "probe"))
    per_epoch = curve.training_minutes(probe, config.batch_size) / config.num_epochs
    config.max_training_minutes = 2.5 * per_epoch  # about three epochs at the probe's speed
    final = run.train_and_evaluate(config, workdir)
    records = curve.read_records(workdir)
    trained = [r for r in records if r["split"] == "train"]
    used = curve.training_minutes(records, config.batch_size)
    before_last = curve.training_minutes(records, config.batch_size, last_step=trained[-1]["step"] - 1)
    assert 1 <= len(trained) < config.num_epochs
    assert before_last < config.max_training_minutes <= used  # stopped at the first epoch that used it up
    with open(os.path.join(workdir, "final_metrics.json")) as f:
        assert json.load(f) == final
    # Complete: the same command trains and evaluates nothing more.
    assert run.train_and_evaluate(config, workdir) == final
    assert curve.read_records(workdir) == records


def test_a_negative_budget_is_refused():
    config = config_lib.resolve(config_lib.default_config())
    config.max_training_minutes = -1.0
    with pytest.raises(ConfigError, match="--config.max_training_minutes=-1.0 is invalid"):
        validation.validate_config(config)


def test_a_larger_budget_resumes_the_stopped_run(tiny_config, tmp_path):
    """The budget may change between a run and its resumption (as the GPU recipe's reruns do):
    a larger one continues the stopped run instead of refusing the workdir."""
    config = tiny_config("vae_binarized_mnist")
    config.num_epochs, config.max_training_minutes = 6, 1e-6  # stops after its first epoch
    workdir = str(tmp_path / "run")
    run.train_and_evaluate(config, workdir)
    assert len([r for r in curve.read_records(workdir) if r["split"] == "train"]) == 1
    config.max_training_minutes = 1000.0
    run.train_and_evaluate(config, workdir)
    assert len([r for r in curve.read_records(workdir) if r["split"] == "train"]) == 6
