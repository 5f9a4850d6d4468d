"""Dropout (``config.model.dropout_rate``): on in training steps only, its masks from the step's
key, the parameters those of the same model without it, and invalid values refused."""

import jax
import numpy as np
import pytest
from conftest import load_config

from vae_jax import config as config_lib
from vae_jax.errors import ConfigError
from vae_jax.models import interface, registry
from vae_jax.training import programs, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHAPE = (8, 8, 1)


def build(rate, kind="vae", hierarchy=()):
    config = config_lib.resolve(load_config("vae"))
    config.model.kind, config.model.dropout_rate = kind, rate
    config.model.hierarchy_latents = hierarchy
    config.model.hierarchy_hidden = (16,)
    if kind == "ae":
        config.likelihood = "squared_error"
    return config, registry.build(config, SHAPE)


def metrics(fns, config, params, x, key, training):
    return fns.per_example_metrics(params, x, key, interface.hyper(config), training=training)


@pytest.mark.parametrize("kind, hierarchy", [("vae", ()), ("vae", (4, 2)), ("ae", ())])
def test_dropout_acts_in_training_steps_only_with_masks_from_the_key(kind, hierarchy):
    config, fns = build(0.5, kind, hierarchy)
    plain_config, plain = build(0.0, kind, hierarchy)
    params = fns.init(jax.random.key(0))
    # The same parameters as the model without dropout (dropout has none).
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(plain.init(jax.random.key(0)))):
        np.testing.assert_array_equal(a, b)
    x = jax.random.uniform(jax.random.key(1), (16, *SHAPE))
    key = jax.random.key(2)
    evaluated = metrics(fns, config, params, x, key, training=False)
    without = metrics(plain, plain_config, params, x, key, training=False)
    for name in evaluated:  # evaluation: the model without dropout, exactly
        np.testing.assert_array_equal(evaluated[name], without[name])
    np.testing.assert_array_equal(fns.encode(params, x), plain.encode(params, x))
    np.testing.assert_array_equal(
        fns.decode_image(params, fns.encode(params, x)), plain.decode_image(params, plain.encode(params, x))
    )
    trained = metrics(fns, config, params, x, key, training=True)
    again = metrics(fns, config, params, x, key, training=True)
    other = metrics(fns, config, params, x, jax.random.key(3), training=True)
    np.testing.assert_array_equal(trained["loss"], again["loss"])  # deterministic: resumable
    assert not np.allclose(trained["loss"], evaluated["loss"])  # the masks change the loss
    assert not np.allclose(trained["loss"], other["loss"])  # and come from the key
    # Without dropout the training call is the evaluation call.
    np.testing.assert_array_equal(metrics(plain, plain_config, params, x, key, training=True)["loss"], without["loss"])


def test_the_training_step_uses_dropout_and_the_evaluation_does_not():
    config, fns = build(0.5)
    state = programs.create_train_state(fns, config, 10, jax.random.key(0), 0)
    x = jax.random.uniform(jax.random.key(1), (16, *SHAPE))
    step = jax.jit(programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config)))
    _, step_metrics = step(state, x, jax.random.key(5))
    evaluated = metrics(fns, config, state.params, x, jax.random.key(5), training=False)
    assert float(step_metrics["loss"]) != pytest.approx(float(np.mean(evaluated["loss"])), rel=1e-4)
    evaluate = programs.make_evaluate(fns, 16)
    twice = [evaluate(state.params, np.asarray(x), jax.random.key(7), interface.hyper(config)) for _ in range(2)]
    assert twice[0] == twice[1]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model.dropout_rate": 1.0}, "--config.model.dropout_rate=1.0 is invalid"),
        ({"model.dropout_rate": -0.1}, "--config.model.dropout_rate=-0.1 is invalid"),
        ({"model.dropout_rate": 0.2, "model.architecture": "resnet"}, "applies to MLP and conv models"),
    ],
)
def test_invalid_dropout_is_one_clear_error(change, message):
    config = config_lib.resolve(load_config("vae"))
    for key, value in change.items():
        section, name = key.split(".")
        config[section][name] = value
    with pytest.raises(ConfigError, match=message):
        validation.validate_config(config)
