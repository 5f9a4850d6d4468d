"""The moving average of the parameters (``config.ema_decay``) and the optimiser options
(``optimizer.name``, ``optimizer.weight_decay``): the recurrence, what a run evaluates, selects,
tests, exports and loads with, an exact resume after SIGKILL, and the checks of the values."""

import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import REPO, load_config

import vae_jax
from vae_jax import config as config_lib
from vae_jax.errors import ConfigError
from vae_jax.models import interface, registry
from vae_jax.training import checkpoints, export, programs, run, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def small(ema_decay=0.0, **optimizer):
    config = config_lib.resolve(load_config("vae"))
    config.ema_decay = ema_decay
    for key, value in optimizer.items():
        config.optimizer[key] = value
    return config


def state_and_batch(config):
    fns = registry.build(config, (8, 8, 1))
    state = programs.create_train_state(fns, config, 100, jax.random.key(0), 0)
    batch = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1))
    return fns, state, batch


def test_the_average_follows_its_recurrence_and_leaves_the_parameters_alone():
    config = small(ema_decay=0.9)
    fns, state, batch = state_and_batch(config)
    plain = programs.create_train_state(fns, small(), 100, jax.random.key(0), 0)
    step = jax.jit(programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config)))
    expected = state.params
    for i in range(4):
        state, _ = step(state, batch, jax.random.key(10 + i))
        plain, _ = step(plain, batch, jax.random.key(10 + i))
        decay = min(0.9, (1 + i) / (10 + i))  # 0.1, 0.18..., then 0.9 once the step is large
        expected = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, expected, state.params)
    for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The optimiser's parameters are those of a run without the average, bit for bit.
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(plain.params)):
        np.testing.assert_array_equal(a, b)
    assert plain.ema_params is None and plain.ema_decay is None
    assert programs.evaluated_params(state) is state.ema_params and programs.evaluated_params(plain) is plain.params
    assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


def test_a_run_evaluates_selects_tests_exports_and_loads_its_average(tiny_config, tmp_path):
    config = tiny_config("vae_binarized_mnist")
    config.ema_decay, config.model_selection = 0.9, "valid"
    workdir = str(tmp_path / "run")
    final = run.train_and_evaluate(config, workdir)
    restored = run.restore_run(workdir)
    evaluate = programs.make_evaluate(restored.fns, restored.config.eval_batch_size)
    test_images = run.load_splits(restored.config)["test"].images
    eval_key = programs.run_keys(restored.config.seed)["eval"]
    hyper = interface.hyper(restored.config)
    on_average = evaluate(restored.params, test_images, eval_key, hyper)
    on_raw = evaluate(restored.raw_params, test_images, eval_key, hyper)
    assert on_average["neg_elbo"] == pytest.approx(final["neg_elbo"], rel=1e-6)
    assert on_raw["neg_elbo"] != pytest.approx(final["neg_elbo"], rel=1e-4)
    # The validation lines of metrics.jsonl are the average's too: the kept epoch's value is the
    # average's validation negative ELBO.
    state = checkpoints.restore_latest(
        checkpoints.open_manager(workdir, name="best_checkpoints"), run._state_template(restored.config, restored.fns)
    )
    assert state.ema_params is not None and float(state.ema_decay) == pytest.approx(0.9)
    model = vae_jax.load(workdir)
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(state.ema_params)):
        np.testing.assert_array_equal(a, b)
    assert model.raw_params is not None
    shipped = str(tmp_path / "shipped")
    record = export.export_run(workdir, shipped)
    assert record["source"]["ema_decay"] == pytest.approx(0.9)
    again = vae_jax.load(shipped)
    assert again.raw_params is None
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(model.params)):
        np.testing.assert_array_equal(a, b)


KILLED_RUN = """
import sys
from conftest import load_config
from vae_jax.training import run

config = load_config("vae")
config.num_epochs, config.checkpoint_every_epochs, config.ema_decay = 3, 1, 0.95
run.train_and_evaluate(config, sys.argv[1])
"""


def test_the_average_resumes_bit_exactly_after_a_sigkill(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")},
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
        "VAE_JAX_KILL_AT": "epoch_logged:3",  # after epoch 2's checkpoint, before epoch 3's
    }
    killed_dir, reference_dir = str(tmp_path / "killed"), str(tmp_path / "reference")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, killed_dir], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    config = load_config("vae")
    config.num_epochs, config.checkpoint_every_epochs, config.ema_decay = 3, 1, 0.95
    resumed_final = run.train_and_evaluate(config, killed_dir)
    reference_final = run.train_and_evaluate(config, reference_dir)
    assert resumed_final == reference_final
    resumed, reference = run.restore_run(killed_dir), run.restore_run(reference_dir)
    for a, b in zip(
        jax.tree.leaves((resumed.params, resumed.raw_params)), jax.tree.leaves((reference.params, reference.raw_params))
    ):
        np.testing.assert_array_equal(a, b)


def test_decoupled_weight_decay_shrinks_the_parameters_by_learning_rate_times_decay():
    params = {"w": jnp.array([1.0, -2.0, 4.0])}
    zero = {"w": jnp.zeros(3)}  # no gradient: Adam's and Adamax's own updates are 0
    for name in ("adam", "adamax"):
        optimizer = programs.make_optimizer(small(name=name, weight_decay=0.01, learning_rate=0.1).optimizer, 10)
        updates, _ = optimizer.update(zero, optimizer.init(params), params)
        np.testing.assert_allclose(updates["w"], -0.1 * 0.01 * params["w"], rtol=1e-6)
        plain = programs.make_optimizer(small(name=name).optimizer, 10)
        still, _ = plain.update(zero, plain.init(params), params)
        np.testing.assert_array_equal(still["w"], jnp.zeros(3))


def test_adamax_is_optax_adamax_and_plain_adam_keeps_the_state_of_earlier_checkpoints():
    params = {"w": jnp.array([1.0, -2.0, 4.0])}
    grads = {"w": jnp.array([0.5, 0.1, -3.0])}
    ours = programs.make_optimizer(small(name="adamax", learning_rate=0.02).optimizer, 10)
    updates, _ = ours.update(grads, ours.init(params), params)
    reference, _ = optax.adamax(0.02).update(grads, optax.adamax(0.02).init(params), params)
    np.testing.assert_allclose(updates["w"], reference["w"], rtol=1e-6)
    current = programs.make_optimizer(small().optimizer, 10).init(params)

    def adam(learning_rate):  # the optimiser every earlier checkpoint was written with
        return optax.adam(learning_rate)

    earlier = optax.apply_if_finite(optax.inject_hyperparams(adam)(learning_rate=1e-3), 10).init(params)
    paths = lambda tree: [
        (jax.tree_util.keystr(p), np.shape(leaf)) for p, leaf in jax.tree_util.tree_leaves_with_path(tree)
    ]
    assert paths(current) == paths(earlier)  # what a checkpoint stores: the same leaves at the same paths


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ema_decay", 1.0, "--config.ema_decay=1.0 is invalid"),
        ("ema_decay", -0.5, "--config.ema_decay=-0.5 is invalid"),
        ("optimizer.name", "sgd", "--config.optimizer.name='sgd' is invalid: expected one of adam, adamax"),
        ("optimizer.weight_decay", -1e-4, "--config.optimizer.weight_decay=-0.0001 is invalid"),
    ],
)
def test_invalid_values_are_one_clear_error(key, value, message):
    config = small()
    section, _, name = key.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validation.validate_config(config)
