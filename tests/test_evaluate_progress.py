"""Progress of the importance-sampled likelihood (`likelihood.LogProgress`, the ``progress`` callback
of `likelihood.model_log_likelihood`): images done, rate and time left, without changing the estimate."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.evaluation import likelihood
from vae_jax.models import vae

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def tiny_vae():
    model = vae.VAE((16,), (16,), 2, (4, 4, 1), output_activation="none")
    key = jax.random.key(0)
    params = model.init(key, jnp.zeros((1, 4, 4, 1)), key)
    config = types.SimpleNamespace(likelihood="bernoulli", c=0.05, objective="elbo", num_train_samples=1)
    images = (np.random.default_rng(0).uniform(size=(37, 4, 4, 1)) < 0.4).astype(np.float32)
    return model, params, config, images


def test_progress_counts_rise_to_the_number_of_images_and_leave_the_estimate_unchanged():
    model, params, config, images = tiny_vae()
    key = jax.random.key(1)
    kwargs = dict(num_samples=20, sample_chunk=8, data_chunk=8)
    quiet = likelihood.model_log_likelihood(vae.fns(model, config), params, images, key, **kwargs)
    calls = []
    reported = likelihood.model_log_likelihood(
        vae.fns(model, config), params, images, key, **kwargs, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(8, 37), (16, 37), (24, 37), (32, 37), (37, 37)]  # one call per chunk of 8
    np.testing.assert_array_equal(reported["per_example"], quiet["per_example"])
    assert reported["nll"] == quiet["nll"] and reported["standard_error"] == quiet["standard_error"]


def test_one_chunk_reports_once():
    model, params, config, images = tiny_vae()
    calls = []
    likelihood.model_log_likelihood(
        vae.fns(model, config), params, images, jax.random.key(1), num_samples=4, progress=lambda *a: calls.append(a)
    )
    assert calls == [(37, 37)]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_log_progress_lines_say_images_done_rate_and_time_left_at_most_every_ten_seconds():
    clock, lines = Clock(), []
    progress = likelihood.LogProgress("NLL k=1000 (test)", log=lines.append, clock=clock)
    # First chunk after 30 s (compiling), then 1,000 images every 4 s: 250 images/s.
    clock.now += 30
    progress(1_000, 10_000)
    for done in range(2_000, 10_001, 1_000):
        clock.now += 4
        progress(done, 10_000)
    assert lines[0] == (
        "NLL k=1000 (test): 1,000 / 10,000 images (10.0%), 33.3 images/s (includes compiling), 30 s elapsed, "
        "about 4 min 30 s left"
    )
    # Then at most one line every 10 s: after 12 s (4,000 images), 24 s (7,000), and the last.
    assert lines[1] == "NLL k=1000 (test): 4,000 / 10,000 images (40.0%), 250.0 images/s, 42 s elapsed, about 24 s left"
    assert lines[2].startswith("NLL k=1000 (test): 7,000 / 10,000 images (70.0%), 250.0 images/s, 54 s elapsed")
    assert lines[3] == "NLL k=1000 (test): 10,000 / 10,000 images (100.0%), 250.0 images/s, 1 min 06 s elapsed, done"
    assert len(lines) == 4


def test_log_progress_logs_every_chunk_when_chunks_are_slow():
    clock, lines = Clock(), []
    progress = likelihood.LogProgress("NLL", log=lines.append, clock=clock)
    for done in (128, 256, 384):
        clock.now += 25  # 25 s a chunk
        progress(done, 384)
    assert [line.split(":")[1].split(" images")[0].strip() for line in lines] == ["128 / 384", "256 / 384", "384 / 384"]
    assert "5.1 images/s" in lines[1] and "about 25 s left" in lines[1]  # 128 images in 25 s; one chunk left
