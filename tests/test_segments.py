"""Epochs cut into segments (`vae_jax.training.segments`, `programs.make_train_segment`): the lengths
follow the measured time, and where an epoch is cut changes no bit of the state or sums."""

import jax
import numpy as np
import pytest

from vae_jax.models import interface, registry
from vae_jax.training import programs, segments


def test_first_segment_then_lengths_follow_the_measured_time():
    lengths = segments.SegmentLengths(steps_per_epoch=468, seconds=10.0)
    assert lengths.next(0) == segments.FIRST_LENGTH == 64
    lengths.observe(64, 40.0)  # its first call (compilation included): too slow, but no shrinking yet
    assert lengths.length == 64
    lengths.observe(64, 20.0)  # measured: 0.3125 s a step, so 32 steps take 10 s
    assert lengths.length == 32 and lengths.next(460) == 8  # clipped at the epoch's end
    lengths.observe(32, 0.32)  # 0.01 s a step: 1000 steps fit, more than the epoch
    assert lengths.length == 468 and lengths.next(100) == 368
    lengths.observe(468, 1.0)
    assert lengths.length == 468


def test_lengths_are_powers_of_two_below_an_epoch_and_a_short_epoch_is_one_segment():
    lengths = segments.SegmentLengths(steps_per_epoch=10_000, seconds=10.0)
    lengths.observe(64, 0.64)
    lengths.observe(64, 0.64)  # 0.01 s a step: 1000 steps fit
    assert lengths.length == 512
    lengths.observe(512, 5.2)  # within a factor of 2 of the target: kept (no new program)
    assert lengths.length == 512
    assert segments.SegmentLengths(steps_per_epoch=46, seconds=10.0).next(0) == 46


def _tiny_training(tiny_config, members=1):
    config = tiny_config("vae")
    fns = registry.build(config, (8, 8, 1))
    model = fns.module
    keys = programs.run_keys(0)
    images = jax.random.uniform(keys["data"], (160, 8, 8, 1))
    order = programs.epoch_order(keys["data"], 0, 160, 16)  # 10 steps
    return config, fns, model, keys, images, order


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("fused", [True, False])
def test_an_epoch_cut_anywhere_equals_the_whole_epoch_bit_for_bit(fused, tiny_config):
    config, fns, model, keys, images, order = _tiny_training(tiny_config)
    step = programs.make_train_step(fns, dynamic_binarization=False, hyper=interface.hyper(config), kl_warmup_steps=0)
    segment = programs.make_train_segment(step, fused=fused)

    def run(cuts):
        state = programs.create_train_state(fns, config, 10, keys["init"], 0)
        sums = programs.zero_metric_sums(programs.metric_shapes(step, state, images, keys["train"]))
        for start, stop in zip(cuts[:-1], cuts[1:]):
            state, sums = segment(state, sums, images, order[start:stop], keys["train"])
        return state, sums

    whole = run([0, 10])
    assert int(whole[0].step) == 10 and set(whole[1]) >= {"loss", "kl"}
    for cuts in ([0, 1, 10], [0, 3, 4, 9, 10], list(range(11))):
        _assert_same(run(cuts), whole)
    epoch_state, epoch_means = programs.make_train_epoch(step, fused=fused)(
        programs.create_train_state(fns, config, 10, keys["init"], 0), images, order, keys["train"]
    )
    _assert_same(epoch_state, whole[0])
    _assert_same(epoch_means, jax.tree.map(lambda total: total / 10, whole[1]))


def test_vmapped_members_cut_into_segments_equal_one_segment_bit_for_bit(tiny_config):
    config, fns, _, keys, images, order = _tiny_training(tiny_config)
    configs = [config.copy_and_resolve_references() for _ in range(2)]
    configs[1].beta = 2.0
    hypers = [(interface.hyper(c), 0) for c in configs]
    members = programs.MembersSegment(fns, config, hypers, [keys["train"]] * 2, "vmap", None)
    orders = [order, programs.epoch_order(keys["data"], 1, 160, 16)]

    def run(cuts, going=(True, True)):
        states = programs.initial_states(configs, (8, 8, 1), 10, 10)
        sums = members.zeros(states, images)
        for start, stop in zip(cuts[:-1], cuts[1:]):
            states, sums = members(states, sums, list(going), images, [o[start:stop] for o in orders])
        return states, sums

    whole = run([0, 10])
    _assert_same(run([0, 4, 5, 10]), whole)
    assert float(whole[1][0]["loss"]) != float(whole[1][1]["loss"])  # the members differ
    stopped = run([0, 4, 10], going=(True, False))  # a member that is not going keeps its start
    _assert_same(stopped[0][1].params, programs.initial_states(configs, (8, 8, 1), 10, 10)[1].params)
    assert all(float(v) == 0.0 for v in stopped[1][1].values())
