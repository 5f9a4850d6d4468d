"""The ResNet encoder and decoder: shapes for each likelihood and image size, the blocks, a
training step, and a tiny VAE with the discretised logistic mixture learning 8-bit images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from vae_jax.errors import ConfigError
from vae_jax.models import interface, likelihoods, registry, resnet
from vae_jax.training import programs, validation

LIKELIHOODS = ("gaussian", "bernoulli", "discretized_logistic", "discretized_logistic_mixture")


def key(seed):
    """A key of the 'rbg' generator: XLA compiles its random bits in a fraction of the time of
    threefry's, which dominates compiling the initialisation of a network with many layers."""
    return jax.random.key(seed, impl="unsafe_rbg")


def resnet_config(likelihood="discretized_logistic_mixture", widths=(8, 16), blocks=1):
    config = load_config("vae")
    config.model.architecture, config.model.resnet_widths, config.model.resnet_blocks = "resnet", widths, blocks
    config.model.latents, config.model.mixture_components = 4, 3
    config.likelihood = likelihood
    config.optimizer.learning_rate = 3e-3
    return config


def eight_bit_images(n, shape, seed=0):
    """``n`` images of 4 random smooth patterns plus noise, on the 8-bit grid k / 255."""
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    rows, columns = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    phases = rng.uniform(0, 2 * np.pi, (4, channels, 2))
    patterns = 0.5 + 0.4 * np.sin(3 * rows[None, ..., None] + phases[:, None, None, :, 0]) * np.cos(
        4 * columns[None, ..., None] + phases[:, None, None, :, 1]
    )
    images = patterns[rng.integers(0, 4, n)] + 0.03 * rng.normal(size=(n, *shape))
    return (np.round(np.clip(images, 0, 1) * 255) / 255).astype(np.float32)


@pytest.mark.parametrize(
    "shape, likelihood",
    [((32, 32, 3), likelihood) for likelihood in LIKELIHOODS]
    + [((28, 28, 1), "discretized_logistic_mixture"), ((64, 64, 3), "discretized_logistic_mixture")],
)
def test_output_shapes_follow_the_likelihood_and_the_image(shape, likelihood):
    """Shapes only (`jax.eval_shape`: traced, not compiled): the decoder's output has the
    likelihood's parameters per pixel at the image's size, 28 included (3 stages: 28 -> 14 -> 7
    -> 4 padded, the decoder's 32 cropped back to 28)."""
    config = resnet_config(likelihood, widths=(4, 8, 8))
    fns = registry.build(config, shape)
    model = fns.module
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    params = jax.eval_shape(model.init, key(0), x, key(0))
    output, mean, logvar = jax.eval_shape(model.apply, params, x, key(0))
    per_pixel = {"gaussian": shape[2], "bernoulli": shape[2], "discretized_logistic": 2 * shape[2]}
    per_pixel["discretized_logistic_mixture"] = 3 * (3 if shape[2] == 1 else 10)  # K (1 + 2C + C (C - 1) / 2)
    assert output.shape == (2, *shape[:2], per_pixel[likelihood])
    assert mean.shape == logvar.shape == (2, 4)
    assert resnet.resnet_coarse_shape(shape, 3) == {28: (4, 4), 32: (4, 4), 64: (8, 8)}[shape[0]]
    metrics = jax.eval_shape(lambda p, x: fns.per_example_metrics(p, x, key(1), interface.hyper(config)), params, x)
    assert all(m.shape == (2,) for m in metrics.values())
    assert ("bits_per_dim" in metrics) == (likelihood in likelihoods.DISCRETIZED_LIKELIHOODS)
    images = jax.eval_shape(fns.decode_image, params, jax.ShapeDtypeStruct((3, 4), jnp.float32))
    assert images.shape == (3, *shape)


def test_the_iwae_objective_with_the_mixture():
    config = resnet_config()
    config.objective, config.num_train_samples = "iwae", 3
    fns = registry.build(config, (32, 32, 3))
    model = fns.module
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    params = jax.eval_shape(model.init, key(0), x, key(0))
    metrics = jax.eval_shape(lambda p, x: fns.per_example_metrics(p, x, key(1), interface.hyper(config)), params, x)
    assert {name: m.shape for name, m in metrics.items()} == {
        name: (2,) for name in ("loss", "neg_elbo", "reconstruction", "kl", "squared_error", "bits_per_dim")
    }


def test_architecture_of_the_stages():
    config = resnet_config(widths=(8, 16, 32), blocks=2)
    model = registry.build(config, (32, 32, 3)).module
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    params = jax.eval_shape(model.init, key(0), x, key(0))["params"]
    encoder, decoder = params["encoder"], params["decoder"]
    assert [encoder[f"down{i}"]["kernel"].shape for i in range(3)] == [(3, 3, 3, 8), (3, 3, 8, 16), (3, 3, 16, 32)]
    assert sorted(k for k in encoder if k.startswith("stage")) == [
        f"stage{s}_block{b}" for s in range(3) for b in (0, 1)
    ]
    assert encoder["mean"]["kernel"].shape == (4 * 4 * 32, 4)  # 32 / 2^3 = 4: flatten, dense
    assert decoder["to_map"]["kernel"].shape == (4, 4 * 4 * 32)
    assert [decoder[f"up{i}"]["kernel"].shape for i in (2, 1, 0)] == [(3, 3, 32, 16), (3, 3, 16, 8), (3, 3, 8, 8)]
    assert decoder["out"]["kernel"].shape == (3, 3, 8, 30)  # K (1 + 2C + 3) = 3 * 10
    assert "norm1" in encoder["stage0_block0"] and "norm_out" in decoder
    config.model.resnet_norm = "none"
    model = registry.build(config, (32, 32, 3)).module
    params = jax.eval_shape(model.init, key(0), x, key(0))["params"]
    assert "norm1" not in params["encoder"]["stage0_block0"] and "norm_out" not in params["decoder"]
    assert [resnet.group_norm_groups(w) for w in (64, 48, 12, 3)] == [32, 16, 4, 1]


def test_a_residual_block_starts_as_the_identity():
    block = resnet.ResidualBlock(8)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 5, 8)), jnp.float32)
    params = jax.jit(block.init)(key(1), x)
    np.testing.assert_array_equal(jax.jit(block.apply)(params, x), x)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(block.apply(p, x) ** 2)))(params)["params"]
    assert float(jnp.abs(grads["conv2"]["kernel"]).sum()) > 0  # and learns from the first step


def test_the_autoencoder_has_a_resnet_too():
    config = resnet_config()
    config.model.kind, config.likelihood = "ae", "squared_error"
    model = registry.build(config, (28, 28, 1)).module
    x = jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32)
    params = jax.eval_shape(model.init, key(0), x)
    reconstruction, code = jax.eval_shape(model.apply, params, x)
    assert reconstruction.shape == (2, 28, 28, 1) and code.shape == (2, 4)


def test_config_checks():
    validation.validate_config(resnet_config())
    for change, message in [
        (dict(resnet_widths=()), "at least one stage"),
        (dict(resnet_norm="batch"), "resnet_norm"),
        (dict(resnet_blocks=-1), "resnet_blocks"),
        (dict(resnet_widths=(8, 0)), "resnet_widths"),
        (dict(mixture_components=0), "mixture_components"),
        (dict(output_activation="sigmoid"), "output_activation"),
    ]:
        config = resnet_config()
        config.model.update(change)
        with pytest.raises(ConfigError, match=message):
            validation.validate_config(config)
    config = resnet_config()
    config.data.binarize = "dynamic"
    with pytest.raises(ConfigError, match="8-bit"):
        validation.validate_config(config)


@pytest.fixture(scope="module")
def mixture_vae():
    """A tiny ResNet VAE with the discretised logistic mixture on 32x32x3 images, its state and
    its jitted training step (compiled once for the tests that use it)."""
    config = resnet_config()
    shape = (32, 32, 3)
    fns = registry.build(config, shape)
    state = jax.jit(lambda k: programs.create_train_state(fns, config, 100, k, 0))(key(0))
    step = jax.jit(
        programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0)
    )
    return state, step, key(1)


def test_one_training_step_on_32x32x3(mixture_vae):
    state, step, train_key = mixture_vae
    batch = jnp.asarray(eight_bit_images(16, (32, 32, 3)))
    new_state, metrics = step(state, batch, train_key)
    assert set(metrics) == {"loss", "neg_elbo", "reconstruction", "kl", "bits_per_dim"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    np.testing.assert_allclose(metrics["bits_per_dim"], metrics["neg_elbo"] / (32 * 32 * 3 * np.log(2)), rtol=1e-5)
    changed = jax.tree_util.tree_flatten_with_path(
        jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
    )[0]
    # Every parameter moves, except a block's first convolution and norms: the second one
    # starts at zero (the block at the identity), so they get gradients from the second step.
    first_in_block = lambda path: any(getattr(p, "key", "") in ("conv1", "norm1", "norm2") for p in path)
    assert [jax.tree_util.keystr(path) for path, moved in changed if moved == first_in_block(path)] == []


def test_one_training_step_on_28x28x1():
    """Three stages on 28x28: 28 -> 14 -> 7 -> 4 (padded), the decoder's 32x32 cropped to 28x28;
    without normalisation (resnet_norm='none')."""
    config = resnet_config("discretized_logistic", widths=(4, 8, 8))
    config.model.resnet_norm = "none"
    shape = (28, 28, 1)
    fns = registry.build(config, shape)
    state = jax.jit(lambda k: programs.create_train_state(fns, config, 1, k, 0))(key(0))
    step = jax.jit(programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config)))
    new_state, metrics = step(state, jnp.asarray(eight_bit_images(4, shape)), key(1))
    assert int(new_state.step) == 1 and all(np.isfinite(float(v)) for v in metrics.values())
    assert 0 < float(metrics["bits_per_dim"]) < 20


def test_a_tiny_mixture_vae_learns_8bit_images(mixture_vae):
    state, step, train_key = mixture_vae
    images = jnp.asarray(eight_bit_images(64, (32, 32, 3), seed=1))
    losses = []
    for i in range(12):
        state, metrics = step(state, images[(i % 4) * 16 : (i % 4 + 1) * 16], jax.random.fold_in(train_key, i))
        losses.append(float(metrics["bits_per_dim"]))
    assert all(np.isfinite(losses)), losses
    print("bits per dimension by step:", np.round(losses, 3))
    assert np.mean(losses[-3:]) < losses[0] - 0.5, losses  # bits per dimension, from about 9
