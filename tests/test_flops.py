"""Matrix-product FLOPs counted from a jaxpr (`vae_jax.evaluation.flops`), against counts by hand."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from conftest import load_config

from configs import vae_binarized_mnist
from vae_jax.evaluation import flops
from vae_jax.models import interface, registry
from vae_jax.training import programs


def test_dense_layers_forward_and_backward():
    class Mlp(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, name="second")(jnp.tanh(nn.Dense(5, name="first")(x)))

    model = Mlp()
    x = jnp.ones((4, 7))
    params = model.init(jax.random.key(0), x)
    forward = flops.matmul_flops(model.apply, params, x)
    assert forward["total"] == 2 * 4 * (7 * 5 + 5 * 3)
    assert forward["by_module"] == {"Mlp/first": 2 * 4 * 7 * 5, "Mlp/second": 2 * 4 * 5 * 3}
    # The gradient in the parameters: weight gradients of both layers, the input gradient of the second only.
    backward = flops.matmul_flops(jax.grad(lambda p: jnp.sum(model.apply(p, x))), params)
    assert backward["total"] == 2 * 4 * (7 * 5 + 5 * 3) * 2 + 2 * 4 * 5 * 3
    assert backward["by_kind"] == {"dot_general": backward["total"]}


def test_convolutions_count_kernel_elements_per_output_and_groups():
    x = jnp.ones((2, 8, 8, 6))
    plain = nn.Conv(4, (3, 3), padding="SAME")
    grouped = nn.Conv(4, (3, 3), padding="VALID", feature_group_count=2)
    for conv, out_side, per_output in ((plain, 8, 3 * 3 * 6), (grouped, 6, 3 * 3 * 3)):
        params = conv.init(jax.random.key(0), x)
        counted = flops.matmul_flops(conv.apply, params, x)
        assert counted["by_kind"] == {"conv_general_dilated": 2 * (2 * out_side * out_side * 4) * per_output}


def test_scan_multiplies_its_body_and_cond_counts_its_largest_branch():
    w = jnp.ones((6, 6))

    def scanned(x):
        return jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=5)[0]

    assert flops.matmul_flops(scanned, jnp.ones((3, 6)))["total"] == 5 * 2 * 3 * 6 * 6

    def branching(p, x):
        return jax.lax.cond(p, lambda x: x @ w @ w, lambda x: x @ w, x)

    assert flops.matmul_flops(branching, True, jnp.ones((3, 6)))["total"] == 2 * (2 * 3 * 6 * 6)


def test_the_reference_vae_step_matches_the_benchmarks_count_by_hand():
    # The trainer's whole step (forward, backward, Adam) of the 784-400-20 MLP VAE: 3.28 MFLOP per example.
    config = vae_binarized_mnist.get_config()  # full size (784-400-20), not shrunk for tests
    fns = registry.build(config, (28, 28, 1))
    keys = programs.run_keys(0)
    state = programs.create_train_state(fns, config, 10, keys["init"], 0)
    step = programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0)
    counted = flops.matmul_flops(step, state, jnp.zeros((128, 28, 28, 1)), keys["train"])
    layers = [(784, 400), (400, 40), (20, 400), (400, 784)]
    by_hand = 3 * sum(2 * m * n for m, n in layers) - 2 * 784 * 400  # no gradient for the images
    assert counted["total"] == 128 * by_hand
    assert set(counted["by_module"]) >= {"encoder/body", "decoder/out"}
    assert sum(counted["by_module"].values()) == counted["total"]


@pytest.mark.parametrize("name", ["bmnist_ladder_vae"])
def test_every_flop_of_a_deep_models_step_is_attributed_to_a_part(name):
    config = load_config(name)
    fns = registry.build(config, (28, 28, 1))
    keys = programs.run_keys(0)
    state = programs.create_train_state(fns, config, 10, keys["init"], 0)
    step = programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=5)
    counted = flops.matmul_flops(step, state, jnp.zeros((config.batch_size, 28, 28, 1)), keys["train"])
    assert sum(counted["by_module"].values()) == counted["total"] > 0
    # Every FLOP in a module, those inside custom derivatives (tall_matmul.RowsDense) too; the
    # autoregressive head is the largest part, forward and backward.
    assert "(outside modules)" not in counted["by_module"]
    head = counted["by_module"]["decoder/decoder.logits"] / counted["total"]
    assert head == max(counted["by_module"].values()) / counted["total"] > 0.5
