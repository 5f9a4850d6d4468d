"""Sweeps (`vae_jax.sweep`): helpers, grouping, and a vmapped sweep against separate runs."""

import json
import os

import jax
import numpy as np
import pytest

from conftest import load_config
from vae_jax import checkpoints, sweep, train, validation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MEMBERS = sweep.product(sweep.values("beta", [0.5, 2.0]), sweep.values("seed", [0, 1]))
NAMES = ["beta=0.5_seed=0", "beta=0.5_seed=1", "beta=2.0_seed=0", "beta=2.0_seed=1"]


def read_lines(path):
    with open(path) as f:
        return f.read()


def test_helpers_expand_products_lists_and_zips():
    assert sweep.values("beta", [1, 2]) == [{"beta": 1}, {"beta": 2}]
    assert sweep.product(sweep.values("a", [1, 2]), sweep.values("b", [3, 4])) == [
        {"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]
    assert sweep.chain(sweep.values("a", [1]), sweep.fixed(b=2)) == [{"a": 1}, {"b": 2}]
    assert sweep.zipped(sweep.values("a", [1, 2]), sweep.values("b", [3, 4])) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(validation.ConfigError):
        sweep.zipped(sweep.values("a", [1, 2]), sweep.values("b", [3]))
    assert [sweep.member_name(m) for m in MEMBERS] == NAMES
    assert sweep.member_name({"model.encoder_hidden": (64, 32)}) == "model.encoder_hidden=64,32"


def test_overrides_and_overlay():
    base = load_config("vae")
    config = sweep.apply_overrides(base, {"optimizer.learning_rate": 3e-4, "beta": 2})
    assert config.optimizer.learning_rate == 3e-4 and config.beta == 2.0 and base.beta == 1.0
    for bad in ({"optimiser.learning_rate": 1.0}, {"beta": "high"}):
        with pytest.raises(validation.ConfigError, match="Sweep override"):
            sweep.apply_overrides(base, bad)
    with pytest.raises(validation.ConfigError, match="twice"):
        sweep.expand(base, [{"beta": 1.0}, {"beta": 1.0}], "/tmp/unused")
    overlay = sweep.ConfigOverlay(base, beta=7.0)
    assert overlay.beta == overlay["beta"] == overlay.get("beta") == 7.0
    assert overlay.c == base.c and overlay.get("objective") == "elbo" and overlay.get("missing", 3) == 3


def test_grouping_separates_shape_changing_values(tmp_path):
    base = load_config("vae")
    members = sweep.expand(base, sweep.chain(
        sweep.product(sweep.values("model.latents", [2, 3]), sweep.values("seed", [0, 1])),
        sweep.product(sweep.values("model.latents", [2]), sweep.values("optimizer.learning_rate", [1e-2]),
                      sweep.values("c", [0.1]), sweep.values("kl_warmup_steps", [10]), sweep.values("beta", [4.0])),
        sweep.values("model.encoder_hidden", [(16,)]),
        sweep.values("data.name", ["binarized_mnist"]),
    ), str(tmp_path))
    groups = sweep.group_members(members)
    assert [(g.name, [m.name for m in g.members]) for g in groups] == [
        ("group-model.latents=2", ["model.latents=2_seed=0", "model.latents=2_seed=1",
                                   "model.latents=2_optimizer.learning_rate=0.01_c=0.1_kl_warmup_steps=10_beta=4.0"]),
        ("group-model.latents=3", ["model.latents=3_seed=0", "model.latents=3_seed=1"]),
        ("group-model.encoder_hidden=16", ["model.encoder_hidden=16"]),
        ("group-data.name=binarized_mnist", ["data.name=binarized_mnist"]),
    ]
    assert all(m.workdir == os.path.join(str(tmp_path), m.name) for m in members)


@pytest.mark.parametrize("schedule,warmup", [("constant", 0), ("constant", 2), ("cosine", 2)])
def test_traced_learning_rate_matches_python_float(schedule, warmup, tiny_config):
    """`optax.inject_hyperparams` with the learning rate in the state gives the updates of
    `train.make_optimizer` (same chain: Adam inside apply_if_finite) for each schedule."""
    config = tiny_config("vae")
    config.optimizer.learning_rate, config.optimizer.warmup_steps, config.optimizer.schedule = 3e-3, warmup, schedule
    params = {"w": jax.random.normal(jax.random.key(0), (5, 3))}
    plain, injected = train.make_optimizer(config.optimizer, 10), sweep.make_optimizer(config.optimizer, 10)
    state_a, state_b = plain.init(params), sweep._with_learning_rate(injected.init(params), 3e-3)
    for i in range(4):
        grads = {"w": jax.random.normal(jax.random.key(i + 1), (5, 3))}
        update_a, state_a = plain.update(grads, state_a, params)
        update_b, state_b = injected.update(grads, state_b, params)
        np.testing.assert_allclose(update_a["w"], update_b["w"], rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 4-member sweep (one group, one program) and the 4 separate runs it stands for."""
    root = tmp_path_factory.mktemp("sweep")
    base = load_config("vae")
    workdir = str(root / "sweep")
    results = sweep.run_sweep(base, MEMBERS, workdir)
    separate = {}
    for overrides in MEMBERS:
        config = sweep.apply_overrides(base, overrides)
        run_dir = str(root / "separate" / sweep.member_name(overrides))
        final = train.train_and_evaluate(config, run_dir)
        _, model = train.model_fns(config, (8, 8, 1))
        template = train.create_train_state(model, (8, 8, 1), train.make_optimizer(config.optimizer, 1),
                                            train.run_keys(config.seed)["init"])
        manager = checkpoints.open_manager(run_dir)
        separate[sweep.member_name(overrides)] = (final, checkpoints.restore_latest(manager, template).params)
        manager.close()
    return base, workdir, results, separate


def test_vmapped_sweep_matches_separate_runs(swept):
    base, workdir, results, separate = swept
    assert sorted(results) == sorted(separate) == sorted(NAMES)
    params = sweep.member_params(base, MEMBERS, workdir)
    for name, (final, separate_params) in separate.items():
        assert results[name].keys() == final.keys()
        for metric in final:
            np.testing.assert_allclose(results[name][metric], final[metric], rtol=1e-5, err_msg=f"{name} {metric}")
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name),
                     params[name], separate_params)
    # The members really differ (beta and seed reached the program as traced values).
    losses = [results[name]["loss"] for name in NAMES]
    assert len(set(np.round(losses, 3))) == 4
    assert results["beta=2.0_seed=0"]["kl"] < results["beta=0.5_seed=0"]["kl"]


def test_each_member_has_its_outputs_and_a_row(swept):
    base, workdir, results, _ = swept
    for name in NAMES:
        member_dir = os.path.join(workdir, name)
        assert {"config.json", "metrics.jsonl", "final_metrics.json", "reconstructions.png", "samples.png",
                "latent_scatter.png", "manifold.png"} <= set(os.listdir(member_dir))
        with open(os.path.join(member_dir, "config.json")) as f:
            config = json.load(f)
        assert (config["beta"], config["seed"]) == (float(name[5:8]), int(name[-1]))
        with open(os.path.join(member_dir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f]
        assert [r["epoch"] for r in records if r["split"] == "train"] == list(range(1, base.num_epochs + 1))
        with open(os.path.join(member_dir, "final_metrics.json")) as f:
            assert json.load(f) == results[name]
    assert os.listdir(os.path.join(workdir, "group", "checkpoints"))
    with open(os.path.join(workdir, "sweep_results.json")) as f:
        table = json.load(f)
    assert [row["name"] for row in table["members"]] == NAMES
    assert all(row["metrics"] == results[row["name"]] and row["group"] == "group" for row in table["members"])
    markdown = read_lines(os.path.join(workdir, "sweep_results.md"))
    assert all(f"| {name} |" in markdown for name in NAMES) and "pending" not in markdown


def test_rerun_resumes_without_retraining(swept, monkeypatch):
    base, workdir, results, _ = swept
    logs = {name: read_lines(os.path.join(workdir, name, "metrics.jsonl")) for name in NAMES}
    monkeypatch.setattr(sweep, "make_group_epoch", lambda *a, **k: pytest.fail("a finished sweep trained again"))
    assert sweep.run_sweep(base, MEMBERS, workdir) == results
    assert all(read_lines(os.path.join(workdir, name, "metrics.jsonl")) == logs[name] for name in NAMES)


def test_interrupted_group_resumes_from_its_checkpoint(swept, tmp_path, monkeypatch):
    """A group killed after its epoch-2 checkpoint continues from it: each epoch is logged
    once, and the result is the uninterrupted sweep's."""
    base, _, results, _ = swept
    members, saves = MEMBERS[:2], []
    real_save = checkpoints.save

    def save_then_die(manager, step, tree):
        real_save(manager, step, tree)
        saves.append(step)
        if len(saves) == 2:
            raise KeyboardInterrupt("killed after the epoch-2 checkpoint")

    monkeypatch.setattr(checkpoints, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(base, members, str(tmp_path))
    monkeypatch.setattr(checkpoints, "save", real_save)
    resumed = sweep.run_sweep(base, members, str(tmp_path))
    for name in NAMES[:2]:
        assert resumed[name] == pytest.approx(results[name], rel=1e-6)
        with open(os.path.join(str(tmp_path), name, "metrics.jsonl")) as f:
            assert [json.loads(line)["epoch"] for line in f] == [1, 1, 2, 2, 3, 3]


def test_changed_members_are_refused(swept, tmp_path):
    base, _, _, _ = swept
    os.makedirs(tmp_path / "group" / "checkpoints" / "3")
    with open(tmp_path / "group" / "members.json", "w") as f:
        json.dump(["someone-else"], f)
    with pytest.raises(validation.ConfigError, match="another sweep group"):
        sweep.run_sweep(base, MEMBERS[:1], str(tmp_path))
