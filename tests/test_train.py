"""Smoke tests of the real `train_and_evaluate` on tiny data, for every config."""

import importlib
import json
import os

import jax
import numpy as np
import pytest
from conftest import CONFIGS

from vae_jax.models import interface, registry
from vae_jax.training import programs, run, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def read_metrics(workdir, split):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == split]


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_trains_and_writes_outputs(name, tiny_config, tmp_path):
    config = tiny_config(name)
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    assert np.isfinite(final["loss"])
    files = set(os.listdir(workdir))
    assert {
        "config.json",
        "final_metrics.json",
        "reconstructions.png",
        "samples.png",
        "latent_scatter.png",
        "manifold.png",
        "checkpoints",
    } <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    if config.model.kind != "pca":
        losses = [r["loss"] for r in read_metrics(workdir, "train")]
        assert len(losses) == config.num_epochs
        assert losses[-1] < losses[0], losses
        assert {"kl", "neg_elbo", "reconstruction"} <= set(final) if config.model.kind == "vae" else "mse" in final


def test_rerun_resumes_instead_of_starting_over(tiny_config, tmp_path):
    config = tiny_config("vae")
    workdir = str(tmp_path / "run")
    config.num_epochs = 2
    run.train_and_evaluate(config, workdir)
    config.num_epochs = 3  # a longer run of the same config continues from step 2 epochs in
    final = run.train_and_evaluate(config, workdir)
    epochs = [r["epoch"] for r in read_metrics(workdir, "train")]
    assert epochs == [1, 2, 3]
    again = run.train_and_evaluate(config, workdir)  # finished: nothing more to train
    assert [r["epoch"] for r in read_metrics(workdir, "train")] == [1, 2, 3]
    assert again == final


def test_resumed_run_matches_uninterrupted_run(tiny_config, tmp_path):
    config = tiny_config("vae")
    whole = run.train_and_evaluate(config, str(tmp_path / "whole"))
    config.num_epochs = 1
    run.train_and_evaluate(config, str(tmp_path / "parts"))
    config.num_epochs = 3
    resumed = run.train_and_evaluate(config, str(tmp_path / "parts"))
    assert resumed == whole


@pytest.mark.parametrize("fused", [True, False])
def test_step_compiles_once(fused, tiny_config):
    config = tiny_config("vae")
    traces = []
    fns = registry.build(config, (8, 8, 1))

    def counted_metrics(*args, **kwargs):
        traces.append(1)
        return fns.per_example_metrics(*args, **kwargs)

    counted = fns._replace(per_example_metrics=counted_metrics)
    step = programs.make_train_step(
        counted, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0
    )
    epoch = programs.make_train_epoch(step, fused=fused)
    keys = programs.run_keys(0)
    state = programs.create_train_state(fns, config, 100, keys["init"], 0)
    images = jax.random.uniform(keys["data"], (96, 8, 8, 1))
    traced = []
    for e in range(3):
        state, _ = epoch(state, images, programs.epoch_order(keys["data"], e, 96, 32), keys["train"])
        traced.append(len(traces))
    assert int(state.step) == 9
    # The first epoch traces the step for its program and, abstractly, for the metrics' shapes;
    # later epochs reuse both (no retracing, no recompilation).
    assert traced == [2, 2, 2]


def test_fused_and_stepwise_epochs_agree(tiny_config, tmp_path):
    config = tiny_config("ae")
    fused = run.train_and_evaluate(config, str(tmp_path / "fused"))
    config.fused_epoch = False
    stepwise = run.train_and_evaluate(config, str(tmp_path / "stepwise"))
    for name in fused:
        np.testing.assert_allclose(fused[name], stepwise[name], rtol=1e-4)


@pytest.mark.parametrize("dynamic", [True, False])
def test_dynamic_binarization_feeds_binary_batches(dynamic, tiny_config):
    config = tiny_config("vae")
    fns = registry.build(config, (8, 8, 1))
    seen = []
    spy = fns._replace(
        per_example_metrics=lambda p, x, k, h, **options: (
            seen.append(x) or fns.per_example_metrics(p, x, k, h, **options)
        )
    )
    keys = programs.run_keys(0)
    state = programs.create_train_state(fns, config, 10, keys["init"], 0)
    batch = np.full((64, 8, 8, 1), 0.5, np.float32)
    programs.make_train_step(spy, dynamic_binarization=dynamic)(state, batch, keys["train"])
    values = np.asarray(seen[0])
    if dynamic:
        assert set(np.unique(values)) == {0.0, 1.0}
        assert abs(values.mean() - 0.5) < 0.05
    else:
        np.testing.assert_array_equal(values, batch)


@pytest.mark.parametrize("traced", [False, True])
def test_kl_warmup_weights_rise_linearly(traced, tiny_config):
    """The warm-up weight, compiled in (a run) or read from the state (a vmapped member)."""
    config = tiny_config("vae")
    fns = registry.build(config, (8, 8, 1))
    weights = []
    spy = fns._replace(
        per_example_metrics=lambda p, x, k, h, **options: (
            weights.append(h.kl_weight) or fns.per_example_metrics(p, x, k, h, **options)
        )
    )
    keys = programs.run_keys(0)
    state = programs.create_train_state(fns, config, 10, keys["init"], 4)
    if traced:
        step = programs.make_train_step(spy, dynamic_binarization=False)
    else:
        step = programs.make_train_step(
            spy, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=4
        )
    batch = np.full((4, 8, 8, 1), 0.5, np.float32)
    for _ in range(6):
        state, _ = step(state, batch, keys["train"])
    np.testing.assert_allclose([float(w) for w in weights], [0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_kl_warmup_epochs_count_in_epochs(tiny_config):
    config = tiny_config("vae")
    config.kl_warmup_epochs = 3
    assert programs.kl_warmup_steps(config, steps_per_epoch=7) == 21
    config.kl_warmup_epochs, config.kl_warmup_steps = 0, 5
    assert programs.kl_warmup_steps(config, steps_per_epoch=7) == 5
    config.kl_warmup_epochs = 2
    with pytest.raises(validation.ConfigError, match="both set the KL warm-up"):
        validation.validate_config(config)


CONFIG_FILES = sorted(
    name[:-3]
    for name in os.listdir(os.path.join(os.path.dirname(__file__), "..", "configs"))
    if name.endswith(".py") and name != "__init__.py"
)


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_file_is_valid(name):
    """Each ``configs/<name>.py`` passes the checks a run makes before any work."""
    config = importlib.import_module(f"configs.{name}").get_config()
    validation.validate_config(config)


def test_dynamic_binarization_evaluates_fixed_binary_images(tiny_config, tmp_path):
    """Training batches are drawn from the grey levels in the step; validation, test and the
    final metrics use one fixed, seeded binarisation of the evaluation splits (the same for
    every seed), so the Bernoulli likelihood is evaluated on binary images."""
    config = tiny_config("vae")
    config.data.binarize, config.likelihood = "dynamic", "bernoulli"
    splits = run.load_splits(config)
    assert len(np.unique(splits["train"].images)) > 2  # grey levels: the step binarises them
    test = splits["test"].images
    assert set(np.unique(test)) == {0.0, 1.0}
    config.seed = 1
    np.testing.assert_array_equal(run.load_splits(config)["test"].images, test)
    config.seed = 0
    final = run.train_and_evaluate(config, str(tmp_path / "run"))
    _, fns, _, params = run.restore(str(tmp_path / "run"))
    evaluate = programs.make_evaluate(fns, config.eval_batch_size)
    on_binary = evaluate(params, test, programs.run_keys(config.seed)["eval"], interface.hyper(config))
    assert final == pytest.approx(on_binary, rel=1e-6)
